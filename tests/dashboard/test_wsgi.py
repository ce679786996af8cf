"""Serving the dashboard: waitress when installed (else werkzeug with one calm line), request logs
only with --verbose."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.processes import free_port, sigint_default

from vistoolbox.dashboard.wsgi import make_server, serve


@pytest.fixture(scope="module")
def app(tmp_path_factory, alexnet_random):
    from vistoolbox.dashboard import create_app

    app = create_app(None, "alexnet", "random", cache_dir=tmp_path_factory.mktemp("wsgi-cache"))
    app.vis_context._model = alexnet_random
    return app


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def browse(base: str) -> None:
    """What a browser does first: the page, the layout, the dependencies (+ one 404)."""
    assert get(base)[0] == 200
    status, body = get(base + "_dash-layout")
    assert status == 200 and json.loads(body)["props"]["className"] == "app"
    assert get(base + "_dash-dependencies")[0] == 200
    with pytest.raises(urllib.error.HTTPError):
        get(base + "vis/cache/0123456789abcdef.png")


@pytest.mark.parametrize("kind", ["waitress", "werkzeug"])
def test_requests_are_logged_only_when_verbose(app, kind, capfd):
    lines: list[str] = []
    for verbose in (False, True):
        server = make_server(app, "127.0.0.1", 0, verbose=verbose, prefer=kind)
        assert server.kind == kind
        thread = threading.Thread(target=serve, args=(app,), daemon=True,
                                  kwargs={"say": lines.append, "server": server})
        thread.start()
        browse(server.url)
        server.stop()
        thread.join(10)
        assert not thread.is_alive()
        err = capfd.readouterr().err
        logged = [line for line in err.splitlines() if line.startswith("GET ")]
        if verbose:
            assert [line.split()[1:3] for line in logged] == [
                ["/", "200"], ["/_dash-layout", "200"], ["/_dash-dependencies", "200"],
                ["/vis/cache/0123456789abcdef.png", "404"]]
            assert all(line.endswith(" ms") for line in logged)
        else:
            assert err == "", err                # nothing per request, no banner, no warning
    app.server.wsgi_app = app.server.wsgi_app.app   # undo the logging middleware for the next case
    calm = [line for line in lines if "development server" in line]
    assert len(calm) == (2 if kind == "werkzeug" else 0)
    assert sum("dashboard at http://127.0.0.1:" in line for line in lines) == 2


def test_vis_dashboard_serves_quietly_through_waitress(tmp_path):
    """The real command in its own process, stopped with Ctrl+C (SIGINT) as a user stops it: one line
    with the URL, nothing per request, no Flask warning, exit code 0; `--verbose` turns the request
    log on."""
    for verbose in (False, True):
        port = free_port()
        args = [sys.executable, "-m", "vistoolbox.cli", "dashboard", "--model", "alexnet", "--weights",
                "random", "--port", str(port), "--cache-dir", str(tmp_path)] + ["--verbose"] * verbose
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=sigint_default)
        try:
            first = proc.stderr.readline()   # blocks until the command says where it listens
            url = f"http://127.0.0.1:{port}/"
            assert first.strip() == f"vis dashboard: dashboard at {url}  (Ctrl+C stops)", first
            for _ in range(3):
                browse(url)
            time.sleep(0.5)                   # the request log lines are written after each response
            proc.send_signal(signal.SIGINT)
            rest = proc.communicate(timeout=60)[1]
            assert proc.returncode == 0, rest
        finally:
            if proc.poll() is None:
                proc.kill()
        lines = [line for line in rest.splitlines() if line.strip()]
        assert not any("WARNING" in line or "development server" in line for line in lines), rest
        assert len(lines) == 12 * verbose and all(line.startswith("GET /") for line in lines), rest
