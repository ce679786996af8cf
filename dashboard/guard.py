"""What reaches Dash, and what a request that fails gets: never an HTTP 500, never a traceback.

- A callback request (``POST /_dash-update-component``) whose body is not the shape of one of the
  app's callbacks (not a JSON object, no or an unknown ``output``, other inputs or states than the
  callback has) is answered 400 with one line; Dash never sees it.
- A path the dashboard does not serve is 404: Dash's catch-all page route (the app has one page),
  component-suite files Dash did not register (``/_dash-component-suites/dash/../../x``).
- A callback that raises answers a value its outputs accept (:func:`failed_callback`): its message
  output (``…-message``, ``…-status``, ``…-note``) says what went wrong, the others stay as they are.
- Any other exception in a request is one line in the server's log and a 404 (GET) or 400 answer.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import dash
import flask
from werkzeug.exceptions import HTTPException

from vistoolbox.errors import VisError

__all__ = ["MESSAGE_IDS", "body_problem", "failed_callback", "install_guard", "log_line", "reason_of"]

#: Outputs that show a callback's message (``children`` of an id ending so).
MESSAGE_IDS = ("-message", "-status", "-note")
UPDATE_PATH = "_dash-update-component"


def reason_of(exc: BaseException) -> str:
    """The first line of what an exception says (≤ 160 characters), without Dash's background prefix."""
    text = str(exc).strip().removeprefix("An error occurred inside a background callback:").strip()
    return f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:160]}"


def log_line(what: str, exc: BaseException) -> None:
    """One line in the server's log (stderr) for a request the dashboard could not use."""
    print(f"vis dashboard: {what} ({reason_of(exc)})", file=sys.stderr, flush=True)


def failed_callback(exc: Exception) -> Any:
    """Dash's ``on_error``: what a callback that raised answers, one value per output in the shape
    Dash checks (a list for a wildcard output), so the request never ends in a 500. Message outputs
    get ``⚠ …`` (a :class:`~vistoolbox.errors.VisError`'s own line, else what failed); every other
    output is left unchanged."""
    log_line("ignored a request it could not use", exc)
    message = f"⚠ {exc}" if isinstance(exc, VisError) else f"⚠ the dashboard could not do this ({reason_of(exc)})"

    def value(spec: Any) -> Any:
        if isinstance(spec, list):                              # a wildcard (ALL) output
            return [dash.no_update for _ in spec]
        shows = (isinstance(spec, dict) and spec.get("property") == "children" and isinstance(spec.get("id"), str)
                 and spec["id"].endswith(MESSAGE_IDS))
        return message if shows else dash.no_update

    outputs = dash.callback_context.outputs_list
    body = flask.request.get_json(silent=True) if flask.has_request_context() else None
    multi = isinstance(body, dict) and str(body.get("output", "")).startswith("..")
    return [value(spec) for spec in outputs] if multi else value(outputs)


def body_problem(app: dash.Dash, body: Any) -> str | None:
    """Why a callback request's body is not one of `app`'s callbacks (None when it has its shape)."""
    if not isinstance(body, dict):
        return f"the body must be a JSON object, not {type(body).__name__}"
    output = body.get("output")
    spec = app.callback_map.get(output) if isinstance(output, str) else None
    if not spec or "callback" not in spec:     # (a clientside callback runs in the browser only)
        return "`output` names no callback of this dashboard"
    for field, wanted in (("inputs", spec["inputs"]), ("state", spec.get("state", []))):
        sent = body.get(field, [])
        if not isinstance(sent, list) or len(sent) != len(wanted):
            return f"`{field}` must list the callback's {len(wanted)} value(s)"
        if not all(_matches(item, want) for item, want in zip(sent, wanted)):
            return f"`{field}` names other components than the callback's"
    names = output[2:-2].split("...") if output.startswith("..") else [output]
    outputs = body.get("outputs")
    if len(names) > 1 and (not isinstance(outputs, list) or len(outputs) != len(names)):
        return f"`outputs` must list the callback's {len(names)} outputs"
    for name, sent in zip(names, outputs if len(names) > 1 else [outputs]):
        if not (isinstance(sent, list) if name.startswith("{") else isinstance(sent, dict)):
            return "`outputs` has another shape than the callback's"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "`changedPropIds` must be a list of names"
    return None


def _matches(item: Any, want: dict) -> bool:
    """A sent input/state against the callback's: the same component and property (a wildcard
    input: a list of components with dict ids and that property)."""
    if str(want["id"]).startswith("{"):
        return isinstance(item, list) and all(isinstance(one, dict) and isinstance(one.get("id"), dict)
                                              and one.get("property") == want["property"] for one in item)
    return isinstance(item, dict) and item.get("id") == want["id"] and item.get("property") == want["property"]


def install_guard(app: dash.Dash) -> None:
    """Put the checks in front of Dash's routes and the last-resort handler behind them."""
    server = app.server
    prefix = app.config.routes_pathname_prefix
    catch_all, suites = f"{prefix}<path:path>", f"{prefix}_dash-component-suites/"

    @server.before_request
    def check_request():  # noqa: ANN202
        rule = flask.request.url_rule
        if rule is None:
            return None                                         # Flask answers 404/405 itself
        if rule.rule == catch_all:
            return _answer(404, "not found")
        if rule.rule.startswith(suites):
            package = (flask.request.view_args or {}).get("package_name")
            path = (flask.request.view_args or {}).get("fingerprinted_path", "")
            if not _registered(app, package, path):
                return _answer(404, "not found")
        if rule.rule == f"{prefix}{UPDATE_PATH}" and flask.request.method == "POST":
            try:
                body = json.loads(flask.request.get_data(cache=True) or b"null")
            except (ValueError, UnicodeDecodeError):
                return _answer(400, "the body is not JSON")
            problem = body_problem(app, body)
            if problem:
                return _answer(400, f"not a callback of this dashboard: {problem}")
        return None

    @server.errorhandler(Exception)
    def unexpected(exc: Exception):  # noqa: ANN202
        if isinstance(exc, HTTPException):
            return exc
        log_line(f"could not answer {flask.request.method} {flask.request.path[:120]}", exc)
        if flask.request.method in ("GET", "HEAD"):
            return _answer(404, "not found")
        return _answer(400, "the dashboard could not use this request")


def _registered(app: dash.Dash, package: Any, fingerprinted: str) -> bool:
    """Whether Dash registered this component-suite file (its fingerprint removed as Dash does)."""
    from dash.fingerprint import check_fingerprint

    path, _ = check_fingerprint(fingerprinted)
    return isinstance(package, str) and path in app.registered_paths.get(package, ())


def _answer(status: int, text: str) -> flask.Response:
    return flask.Response(text + "\n", status=status, mimetype="text/plain")
