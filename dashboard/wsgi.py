"""Serving the dashboard: through waitress (a production WSGI server, a dependency) when it is
installed, else through werkzeug's development server with one calm line saying so.

Requests are logged (one line each: method, path, status, milliseconds) only when asked for
(``vis dashboard --verbose``); the browser polls running jobs several times a second, so a request
log is noise unless you are debugging.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import dash

from vistoolbox.errors import VisRuntimeError, VisUsageError

__all__ = ["check_port", "RequestLog", "Server", "make_server", "serve"]

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
#: Worker threads of the waitress server (job-progress polls and image requests run in parallel).
THREADS = 8


class RequestLog:
    """WSGI middleware: one stderr line per request, ``GET /path?query 200 12 ms``."""

    def __init__(self, app: WSGIApp, stream: Any = None) -> None:
        self.app = app
        self.stream = stream

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        start = time.perf_counter()
        status: list[str] = []

        def recording(code: str, headers: list, *args: Any) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, *args)

        result = self.app(environ, recording)  # the handler has run; the body streams afterwards
        query = environ.get("QUERY_STRING")
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        ms = (time.perf_counter() - start) * 1000
        print(f"{environ.get('REQUEST_METHOD', '?')} {path} {status[0] if status else '-'} {ms:.0f} ms",
              file=self.stream or sys.stderr, flush=True)
        return result


@dataclass
class Server:
    """A bound server: `kind` is ``"waitress"`` or ``"werkzeug"``; :meth:`run` serves until
    :meth:`stop` is called from another thread (or Ctrl-C) and then releases the socket."""

    kind: str
    host: str
    port: int
    run: Callable[[], None]
    stop: Callable[[], None]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def make_server(app: dash.Dash, host: str = "127.0.0.1", port: int = 8050, verbose: bool = False,
                prefer: str = "waitress") -> Server:
    """Bind `app` to `host`:`port` (0 picks a free port) with waitress, or werkzeug when waitress is
    not installed (or `prefer` is ``"werkzeug"``). Requests are logged only when `verbose`."""
    check_host(host)
    try:
        return _bind(app, host, port, verbose, prefer)
    except OSError as exc:   # the port is taken, the address is not this machine's, no permission
        raise _cannot_listen(host, port, exc) from None


def check_host(host: str) -> None:
    """Refuse a `host` that names no address (a typo, an unknown name) before anything is loaded."""
    import socket

    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise VisUsageError(f"`host` {host!r} is not an address or a name that resolves; use 127.0.0.1 (this "
                            "machine only), 0.0.0.0 (every interface) or one of this machine's addresses") from None


def check_port(host: str, port: int) -> None:
    """Refuse, as :func:`make_server` would, a `host`:`port` that cannot be listened on now."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> VisRuntimeError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return VisRuntimeError(f"cannot listen on {host}:{port}: {reason}; choose another `port` (or stop "
                           "what uses it)")


def _bind(app: dash.Dash, host: str, port: int, verbose: bool, prefer: str) -> Server:
    if verbose and not isinstance(app.server.wsgi_app, RequestLog):
        app.server.wsgi_app = RequestLog(app.server.wsgi_app)  # type: ignore[method-assign]
    if prefer == "waitress":
        try:
            from waitress.server import create_server
        except ImportError:
            pass
        else:
            server = create_server(app.server, host=host, port=port, threads=THREADS, ident="vistoolbox")
            bound = server.effective_port  # type: ignore[union-attr]
            stopped: list[bool] = []

            def stop() -> None:
                # let the worker threads finish (they wake the loop when done), then hand the loop
                # its close through the trigger: it must close itself. Only once, and never through
                # a trigger already closed (its pipe's number may belong to another file by now)
                if stopped or getattr(server.trigger, "_closed", False):  # type: ignore[union-attr]
                    return
                stopped.append(True)
                server.task_dispatcher.shutdown()  # type: ignore[union-attr]
                server.trigger.pull_trigger(server.close)  # type: ignore[union-attr]

            return Server("waitress", host, int(bound), server.run, stop)
    from werkzeug.serving import make_server as werkzeug_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # its own request log and banner; errors stay
    server = werkzeug_server(host, port, app.server, threaded=True)

    def run() -> None:
        try:
            server.serve_forever()
        finally:
            server.server_close()

    return Server("werkzeug", host, server.server_port, run, server.shutdown)


def serve(app: dash.Dash, host: str = "127.0.0.1", port: int = 8050, verbose: bool = False,
          say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
          server: Server | None = None) -> None:
    """Serve `app` until Ctrl-C on a new :func:`make_server` (or the `server` given), telling `say`
    the URL in one line, plus one calm line when only werkzeug's development server is available."""
    server = server or make_server(app, host, port, verbose)
    if server.kind == "werkzeug":
        say("serving with werkzeug's development server (fine on your own machine; `pip install waitress` "
            "for a production server)")
    say(f"dashboard at {server.url}  (Ctrl+C stops)")
    server.run()
