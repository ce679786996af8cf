"""The dashboard's server-side limits, through its real ``/_dash-update-component`` endpoint: forged
callback values get a message (never an HTTP 500), background jobs wait in a queue that shows their
place, simultaneous Live requests share one forward pass; and `vis dashboard` as a process: a busy
port is one line, and its temporary cache folder is gone when it exits."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.processes import free_port, sigint_default

from vistoolbox import FeatureExtractor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A dashboard on a real mined run (vgg16/hed) that runs one background job at a time."""
    from dashboard_browser import mine_run

    from vistoolbox.dashboard import create_app

    run_dir = mine_run(tmp_path_factory.mktemp("mined"))
    return create_app([run_dir], device="cpu", cache_dir=tmp_path_factory.mktemp("limits-cache"), max_jobs=1,
                      datasets=[Path(run_dir).parent / "images"])   # the run's source images may be shown


def key_of(app, output: str) -> str:  # noqa: ANN001
    """The callback whose outputs start with `output` (``"..live-maps.figure"``)."""
    return next(key for key in app.callback_map if key.startswith(output))


def post(app, output: str, inputs: list, states: list = (), changed: int = 0, query: str = ""):  # noqa: ANN001, ANN201
    """POST one callback (found by its first output) with these input and state values → the response."""
    key = key_of(app, output)
    body = callback_body(key, app.callback_map[key], inputs, states, changed)
    response = app.server.test_client().post("/_dash-update-component" + query, json=body)
    return response, body


def callback_body(key: str, spec: dict, inputs: list, states: list = (), changed: int = 0) -> dict:
    """The body the browser POSTs for callback `key` (`spec`: its ``inputs``/``state`` lists, as in
    ``app.callback_map`` or ``/_dash-dependencies``) with these values."""
    outs = [output_spec(o) for o in key.strip(".").split("...")] if key.startswith("..") else [output_spec(key)]
    return {"output": key, "outputs": outs if key.startswith("..") else outs[0],
            "inputs": [{**{k: i[k] for k in ("id", "property")}, "value": v} for i, v in zip(spec["inputs"], inputs)],
            "state": [{**{k: s[k] for k in ("id", "property")}, "value": v} for s, v in zip(spec["state"], states)],
            "changedPropIds": [f"{spec['inputs'][changed]['id']}.{spec['inputs'][changed]['property']}"]}


def output_spec(output: str) -> dict | list[dict]:
    """``id.property@hash`` → the output the browser sends; a pattern id (``{"rank":["ALL"],…}``)
    → its nine components, as for the top-9."""
    name, prop = output.split("@")[0].rsplit(".", 1)
    if not name.startswith("{"):
        return {"id": name, "property": prop}
    pattern = json.loads(name)
    return [{"id": {**pattern, "rank": rank}, "property": prop} for rank in range(9)]


def stored_image(app) -> dict:  # noqa: ANN001
    from vistoolbox.dashboard.jobs import resolve_pick

    return {"key": resolve_pick(app.vis_context, "sample:chelsea")}


def test_forged_live_and_units_values_get_a_message_not_a_500(app):
    run = app.vis_context.runs[0]
    layer = run.layers[0]
    image = stored_image(app)
    maps = "..live-maps.figure"
    for forged_layer, needle in ((5, "layer must be one of"), (["features.0"], "layer must be one of"),
                                 ("nope", "layer must be one of")):
        response, _ = post(app, maps, [image, forged_layer, "channel"], [None])
        assert response.status_code == 200, forged_layer
        assert needle in response.get_json()["response"]["live-message"]["children"], forged_layer
    response, _ = post(app, maps, [{"key": "../../../etc/passwd"}, "features.0", "channel"], [None])
    assert "not images this dashboard stored" in response.get_json()["response"]["live-message"]["children"]

    meta = {"tile": 24, "pad": 2, "ncols": 8, "nrows": 8, "channels": 10**6}   # `channels` forged too
    response, _ = post(app, "..live-overlay.src", ["abc", meta], [image, "features.0"])
    assert response.status_code == 200
    assert response.get_json()["response"]["live-channel-message"]["children"].startswith("⚠ 'abc' is not a channel")
    response, _ = post(app, "..live-overlay.src", [10**6, meta], [image, "features.0"])
    assert "its 64 channels are 0–63" in response.get_json()["response"]["live-channel-message"]["children"]
    response, _ = post(app, maps, [image, "features.0", "forged"], [None])
    assert "scale must be one of" in response.get_json()["response"]["live-message"]["children"]

    for sel in ({"run": 0, "layer": layer, "unit": 1_000_000}, {"run": "x", "layer": layer, "unit": 0},
                {"run": 0, "layer": 3, "unit": 0}, {"run": 7, "layer": layer, "unit": 0}, "0"):
        response, _ = post(app, "..detail-title.children", [sel])
        assert response.status_code == 204, sel          # nothing changes; the server does not fail
    response, _ = post(app, "..detail-title.children", [{"run": 0, "layer": layer, "unit": 3}])
    assert response.status_code == 200 and "3" in str(response.get_json()["response"]["detail-title"]["children"])


def run_job(app, output: str, inputs: list, states: list, seen: list | None = None, timeout: float = 120) -> dict:  # noqa: ANN001
    """Start a background callback and poll it as the browser does → its final response (progress
    messages are appended to `seen`)."""
    response, body = post(app, output, inputs, states)
    start = response.get_json()
    query = "?" + urllib.parse.urlencode({"cacheKey": start["cacheKey"], "job": start["job"]})
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        response = app.server.test_client().post("/_dash-update-component" + query, json=body)
        assert response.status_code in (200, 204)
        if response.status_code == 204:
            continue
        data = response.get_json()
        if seen is not None and "progress" in data:
            seen.append(data["progress"])
        if "response" in data:
            return data["response"]
    pytest.fail("the job did not finish")


def tex_states(app, size: object, steps: object, layers: object = None) -> list:  # noqa: ANN001
    from vistoolbox.dashboard.jobs import resolve_pick

    return [{"keys": [resolve_pick(app.vis_context, "sample:brick")]}, size, steps, 0, layers]


@pytest.mark.parametrize("size, steps, layers, message", [
    (2048, 100, None, "size must be between 16 and 1,024, got 2,048"),
    (64, 1_000_000, None, "steps must be between 1 and 5,000, got 1,000,000"),
    (64, "many", None, "steps must be a whole number, got 'many'"),
    (64, 10, ["no-such-layer"], "layers has 'no-such-layer', which is not one of the choices")])
def test_forged_texture_job_is_refused_with_its_limit(app, size, steps, layers, message):
    response = run_job(app, "..tex-result.src", [1], tex_states(app, size, steps, layers))
    assert response["tex-status"]["children"] == f"⚠ {message}"


@pytest.mark.parametrize("changes, message", [
    ({"steps": 1_000_000}, "steps must be between 1 and 5,000, got 1,000,000"),
    ({"style_weight": float("nan")}, "style_weight must be a finite number, got nan"),
    ({"content_weight": -1}, "content_weight must be at least 0, got -1"),
    ({"preserve": "everything"}, "colours must be one of none"),
    ({"content": {"keys": ["../x"]}}, "the chosen images are not images this dashboard stored")])
def test_forged_transfer_job_is_refused_with_its_limit(app, changes, message):
    from vistoolbox.dashboard.jobs import resolve_pick

    store = {"keys": [resolve_pick(app.vis_context, "sample:chelsea")]}
    values = {"content": store, "styles": store, "blend": None, "style_weight": 5, "content_weight": 1,
              "preserve": "none", "size": 32, "steps": 2, **changes}
    response = run_job(app, "..tr-result.src", [1], list(values.values()))
    assert response["tr-status"]["children"].startswith(f"⚠ {message}"), response["tr-status"]


def test_forged_optimised_image_steps_are_refused(app):
    layer = app.vis_context.runs[0].layers[0]
    response = run_job(app, "..max-view.src", [1], [{"run": 0, "layer": layer, "unit": 2}, 10**9])
    assert response["max-status"]["children"] == "⚠ steps must be between 8 and 4,096, got 1,000,000,000"


def test_jobs_beyond_the_cap_wait_in_a_queue_that_shows_their_place(app):
    """With one job slot held, a texture job waits, says its place, then runs when the slot frees."""
    ctx = app.vis_context
    ctx.slots  # creates the slot files
    # another job process holds the one slot (a thread here would not do: the job process, forked
    # from this one, would inherit its lock)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",  # until killed
                               str(ctx.cache_dir / "slots" / "slot-0.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    release = threading.Timer(4, holder.kill)     # (the job process shares its stdin: it never closes)
    release.start()
    seen: list = []
    try:
        response = run_job(app, "..tex-result.src", [1], tex_states(app, 16, 2), seen)
    finally:
        release.cancel()
        holder.kill()
        holder.wait()
    shown = json.dumps(seen, ensure_ascii=False)
    assert '"queued: 1 of 1 waiting (1 job runs at a time)"' in shown, shown[:2000]
    assert response["tex-status"]["children"].startswith("done"), response["tex-status"]
    assert ctx.slots.running() == 0 and not ctx.slots.waiting()


def test_simultaneous_live_requests_share_one_forward_pass(app, monkeypatch):
    from vistoolbox.dashboard import live

    calls = []
    original = FeatureExtractor.__call__

    def counting(self, x):  # noqa: ANN001, ANN202
        calls.append(threading.get_ident())
        time.sleep(0.2)                     # a slow model: the others arrive while it computes
        return original(self, x)
    monkeypatch.setattr(FeatureExtractor, "__call__", counting)
    live._CACHE.clear()
    image = stored_image(app)
    codes: list[int] = []

    def request() -> None:
        response, _ = post(app, "..live-maps.figure", [image, "features.20", "channel"], [None])
        codes.append(response.status_code)
    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 20 and len(calls) == 1


def test_a_job_forked_after_a_forward_pass_does_not_hang():
    """Jobs are forked from a server thread that may have run a forward pass on several threads
    (Live): torch in the child waits forever for OpenMP workers that were not forked, unless the
    job first calls `in_job_process`."""
    import torch

    from vistoolbox.dashboard.jobs import in_job_process

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.ones(2000, 2000).add(1)             # a parallel region on this thread
        pid = os.fork()
        if pid == 0:                              # the job process
            signal.alarm(60)                      # a hang ends as SIGALRM
            in_job_process()
            total = float(torch.ones(2000, 2000).add(1).sum())
            os._exit(0 if total == 2 * 2000 * 2000 else 3)
        _, status = os.waitpid(pid, 0)
    finally:
        torch.set_num_threads(threads)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


# --------------------------------------------------------------------------- the process
def dashboard(tmp_path: Path, *args: str) -> subprocess.Popen:
    """`vis dashboard` with its system temp folder in `tmp_path` (no --cache-dir)."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "vistoolbox.cli", "dashboard", "--model", "alexnet", "--weights",
                             "random", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_default)


def test_busy_port_is_one_line_and_never_claims_to_run(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = dashboard(tmp_path, "--port", str(port))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and out == "", (out, err)
    assert err.splitlines() == [f"vis: error: cannot listen on 127.0.0.1:{port}: Address already in use; choose "
                                "another --port (or stop what uses it)"]
    assert not list(tmp_path.glob("vis-dashboard-*"))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_dashboard_removes_its_temporary_cache_at_exit(tmp_path, stop):
    proc = dashboard(tmp_path, "--port", str(free_port()))
    try:
        line = proc.stderr.readline()
        assert "dashboard at http://127.0.0.1:" in line, line
        assert len(list(tmp_path.glob("vis-dashboard-*"))) == 1
        proc.send_signal(stop)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode in (0, 130, 143), proc.returncode    # a stop, not a crash
    assert not list(tmp_path.glob("vis-dashboard-*"))
