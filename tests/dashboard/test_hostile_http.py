"""The dashboard against a hostile client (issue 24): forged ``/_dash-update-component`` bodies get
400 and a line, unknown paths 404, a callback that fails answers values its outputs accept (never
an HTTP 500 or a traceback); picks and uploads per request are capped and the upload cache is
evicted, least recently used first; and `vis dashboard` as a process: SIGTERM/SIGINT end the
server and its running jobs within seconds without a traceback, ``kill -9`` leaves no job process
and no temporary cache behind."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import time
import urllib.request

import pytest
from test_dashboard_limits import app, callback_body, dashboard, key_of, post  # noqa: F401 - `app`: the shared fixture

from tests.processes import free_port

UPDATE = "/_dash-update-component"


def assert_calm(response, *codes: int) -> None:  # noqa: ANN001
    """An answer with one of `codes`, and no traceback in it."""
    text = response.get_data(as_text=True)
    assert response.status_code in codes, (response.status_code, text[:300])
    assert "Traceback" not in text and 'File "' not in text, text[:300]


# --------------------------------------------------------------------------- malformed requests

def forged_bodies(app) -> dict[str, object]:  # noqa: ANN001
    """The bodies of the issue (a list, null, no or an unknown output, wrong input counts) and a few
    more shapes Dash itself would fail on."""
    detail = key_of(app, "..detail-title.children")
    good = callback_body(detail, app.callback_map[detail], [{"run": 0, "layer": "features.0", "unit": 0}])
    live = key_of(app, "..live-maps.figure")
    return {
        "a list": [good], "null": None, "a string": "x", "a number": 7,
        "no output": {k: v for k, v in good.items() if k != "output"},
        "an unknown output": {**good, "output": "nope.children"},
        "an output of another app": {**good, "output": "..a.children...b.children.."},
        "a clientside callback": {**good, "output": key_of(app, "unit-grid.className")},
        "no inputs": {k: v for k, v in good.items() if k != "inputs"},
        "two inputs for one": {**good, "inputs": good["inputs"] * 2},
        "an input of another component": {**good, "inputs": [{"id": "tabs", "property": "value", "value": 1}]},
        "an input that is not an object": {**good, "inputs": ["selection.data"]},
        "a state too many": {**good, "state": good["inputs"]},
        "too few outputs": {**good, "outputs": good["outputs"][:2]},
        "outputs as one object": {**good, "outputs": good["outputs"][0]},
        "a wildcard output as one object": {**good, "outputs": [good["outputs"][0]] * len(good["outputs"])},
        "changedPropIds not a list": {**good, "changedPropIds": "selection.data"},
        "Live with missing states": callback_body(live, {**app.callback_map[live], "state": []},
                                                  [{"key": "ab" * 16}, "features.0", "channel"]),
    }


def test_malformed_callback_bodies_get_400_and_one_line(app):
    client = app.server.test_client()
    for name, body in forged_bodies(app).items():
        response = client.post(UPDATE, data=json.dumps(body), content_type="application/json")
        assert_calm(response, 400)
        assert len(response.get_data(as_text=True).strip().splitlines()) == 1, name
    for raw, kind in ((b"{not json", "application/json"), (b"\xff\xfe", "application/json"), (b"a=1", None)):
        response = client.post(UPDATE, data=raw, content_type=kind)
        assert_calm(response, 400)
    # the well-formed body of the same callback still works
    detail = key_of(app, "..detail-title.children")
    response, _ = post(app, detail, [{"run": 0, "layer": "features.0", "unit": 0}])
    assert response.status_code == 200 and "unit 0" in str(response.get_json()["response"]["detail-title"])


def test_unknown_paths_are_404_and_dash_files_are_still_served(app):
    client = app.server.test_client()
    assert client.get("/").status_code == 200                 # (registers Dash's component files)
    package, files = next((p, f) for p, f in app.registered_paths.items() if f)
    assert client.get(f"/_dash-component-suites/{package}/{sorted(files)[0]}").status_code == 200
    for path in ("/_dash-component-suites/dash/../../x", "/_dash-component-suites/dash/../../../etc/passwd",
                 "/_dash-component-suites/os/path.py", "/_dash-component-suites/dash/dash.py",
                 "/junk", "/a/b/c.php", "/vis/run/0/../../etc/passwd", "/vis/cache/zz.png", "/vis/source/9/x/0/0.png"):
        assert_calm(client.get(path), 404)
    assert client.get("/_dash-layout").status_code == 200 and client.get("/_dash-dependencies").status_code == 200


# --------------------------------------------------------------------------- failing callbacks

class Damaged:
    """A run whose every file read fails, as a damaged or hostile run's would."""

    def __init__(self, run, error: Exception) -> None:  # noqa: ANN001
        self.run, self.error = run, error

    def __getattr__(self, name: str):  # noqa: ANN204
        if name in ("topk", "patch", "maximized", "image_path", "layer_info", "stats"):
            def fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                raise self.error
            return fail
        return getattr(self.run, name)


@pytest.mark.parametrize("error", [IndexError("index 1000000000 is out of bounds for axis 0 with size 12"),
                                   ValueError("cannot reshape array"), OSError("damaged top-k file")])
def test_a_callback_that_fails_answers_values_its_outputs_accept(app, monkeypatch, capfd, error):
    ctx = app.vis_context
    layer = ctx.runs[0].layers[0]
    monkeypatch.setattr(ctx, "runs", [Damaged(ctx.runs[0], error)])
    sel = {"run": 0, "layer": layer, "unit": 1}
    # the top-9 frames: one wildcard output (nine components); Dash raised on the `None` it got
    response, _ = post(app, '{"rank":["ALL"],"type":"top9-inside"}.style', [sel])
    assert_calm(response, 200, 204)
    if response.status_code == 200:
        styles = response.get_json()["response"]
        assert all(len(value) == 1 for value in styles.values())
    # the detail pane (a wildcard among eight outputs) says what went wrong in its status
    response, _ = post(app, "..detail-title.children", [sel])
    assert_calm(response, 200)
    message = response.get_json()["response"]["max-status"]["children"]
    assert message.startswith("⚠ the dashboard could not do this") and type(error).__name__ in message
    log = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert log and all(line.startswith("vis dashboard: ") for line in log), log


GARBAGE = [None, "..", -1, 10**12, 1e308, [1, [2]], {"run": 0, "layer": "..", "unit": 10**9},
           {"run": 0, "layer": "../../etc", "unit": -5}, {"keys": ["../x"]}, {"key": {"a": 1}}, "x" * 5000]


def test_no_callback_answers_500_to_garbage_values(app):
    """Every server callback of the app, every input and state set to each hostile value: a 200
    with JSON, or 204 — never a 500 (background jobs are left out: they start processes; the
    clientside callbacks are refused with 400 — the browser runs them)."""
    client = app.server.test_client()
    seen = 0
    for key, spec in list(app.callback_map.items()):
        if "callback" not in spec or spec.get("background") or any(str(i["id"]).startswith("{") for i in spec["inputs"] + spec["state"]):
            continue
        for value in GARBAGE:
            body = callback_body(key, spec, [value] * len(spec["inputs"]), [value] * len(spec["state"]))
            response = client.post(UPDATE, json=body)
            assert_calm(response, 200, 204)
            if response.status_code == 200:
                assert isinstance(response.get_json()["response"], dict), key
            seen += 1
    assert seen >= 20 * len(GARBAGE)


# --------------------------------------------------------------------------- bounds

def png_data_uri(colour: tuple[int, int, int], size: int = 4) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def picker(app, prefix: str, contents: object = None, picked: object = None, upload: bool = False):  # noqa: ANN001, ANN201
    """The picker callback of `prefix` as the browser calls it → (status, its response)."""
    response, _ = post(app, f"..{prefix}-images.data", [contents, picked], [None, None], changed=0 if upload else 1)
    assert_calm(response, 200)
    return response.get_json()["response"]


def test_picks_per_request_are_capped(app):
    from vistoolbox.dashboard.inputs import MAX_IMAGES

    ctx = app.vis_context
    before = set(ctx.uploads.iterdir())
    start = time.perf_counter()
    answer = picker(app, "tr-style", picked=[f"run:0:{i}" for i in range(100)])
    assert time.perf_counter() - start < 2.0
    assert answer["tr-style-message"]["children"] == f"⚠ at most {MAX_IMAGES} images at once, got 100"
    assert set(ctx.uploads.iterdir()) == before                  # nothing was decoded or stored
    # as many as the cap are fine (8 samples and 8 run images, each a cached image)
    values = [f"sample:{name}" for name in ("brick", "grass", "gravel", "coffee", "chelsea", "astronaut",
                                            "rocket", "immunohistochemistry")] + [f"run:0:{i}" for i in range(8)]
    assert len(values) == MAX_IMAGES
    answer = picker(app, "tr-style", picked=values)
    assert answer["tr-style-message"]["children"] == "" and len(answer["tr-style-images"]["data"]["keys"]) == 16


def test_uploads_per_request_are_capped(app):
    from vistoolbox.dashboard.inputs import MAX_IMAGES

    ctx = app.vis_context
    before = set(ctx.uploads.iterdir())
    tiny = [png_data_uri((i % 256, i // 256 % 256, 7)) for i in range(5000)]
    start = time.perf_counter()
    answer = picker(app, "tr-style", contents=tiny, upload=True)
    assert time.perf_counter() - start < 5.0
    assert answer["tr-style-message"]["children"] == f"⚠ at most {MAX_IMAGES} uploads at once, got 5,000"
    assert set(ctx.uploads.iterdir()) == before
    answer = picker(app, "tr-style", contents=tiny[:3], upload=True)
    assert len(answer["tr-style-images"]["data"]["keys"]) == 3


def lru_reference(uses: list[str], max_files: int) -> list[str]:
    """What a least-recently-used cache of `max_files` entries holds after `uses` (oldest first)."""
    held: list[str] = []
    for name in uses:
        if name in held:
            held.remove(name)
        held.append(name)
        held = held[-max_files:]
    return held


def test_the_upload_cache_keeps_the_most_recently_used(app, monkeypatch):
    from vistoolbox.dashboard import uploads
    from vistoolbox.dashboard.jobs import resolve_pick
    from vistoolbox.errors import VisUsageError

    ctx = app.vis_context
    for path in ctx.uploads.iterdir():
        path.unlink()
    monkeypatch.setattr(uploads, "CACHE_FILES", 3)
    colours = {name: (40 * i, 255 - 40 * i, 90) for i, name in enumerate("abcde")}
    uses = list("abcadbeae")
    keys: dict[str, str] = {}
    for name in uses:
        try:                   # picking a cached upload again (its dropdown value) is a use
            resolve_pick(ctx, f"upload:{keys[name]}")
        except (KeyError, VisUsageError):   # never uploaded, or evicted: upload it (again)
            keys[name] = uploads.store_upload(ctx, png_data_uri(colours[name]))[0]
        time.sleep(0.01)       # distinct modification times
    held = {path.stem for path in ctx.uploads.iterdir()}
    assert held == {keys[name] for name in lru_reference(uses, 3)}
    gone = next(name for name in keys if keys[name] not in held)
    answer = picker(app, "tex", picked=f"upload:{keys[gone]}")
    assert answer["tex-message"]["children"] == "⚠ the image is no longer cached; upload it again"


def test_evict_bounds_files_and_bytes_oldest_first(tmp_path):
    from vistoolbox.dashboard.uploads import evict

    sizes = [300, 100, 500, 200, 400, 100]
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i:08x}.png"
        path.write_bytes(b"x" * size)
        os.utime(path, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))   # file i is the i-th oldest
    (tmp_path / "note.txt").write_bytes(b"y" * 10_000)                 # not a cached image: never counted
    newest = tmp_path / f"{len(sizes) - 1:08x}.png"
    removed = evict(tmp_path, max_files=5, max_bytes=1000, keep=newest)
    # brute force: drop the oldest until both bounds hold
    kept = list(range(len(sizes)))
    while len(kept) > 5 or sum(sizes[i] for i in kept) > 1000:
        kept.pop(0)
    assert sorted(p.name for p in removed) == [f"{i:08x}.png" for i in range(len(sizes)) if i not in kept]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{i:08x}.png" for i in kept]
    assert (tmp_path / "note.txt").exists()
    assert evict(tmp_path, 0, 0, keep=newest) and [p.name for p in tmp_path.glob("*.png")] == [newest.name]


# --------------------------------------------------------------------------- the process

def http_callback(base: str, specs: dict, output: str, inputs: list, states: list, changed: int = 0) -> dict:
    """POST one callback (by its first output) to a running server, as the browser does → its JSON."""
    key = next(k for k in specs if k.startswith(output))
    body = json.dumps(callback_body(key, specs[key], inputs, states, changed)).encode()
    request = urllib.request.Request(base + UPDATE.lstrip("/"), body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_texture_job(proc, port: int) -> int:  # noqa: ANN001
    """Start a long texture job on the `vis dashboard` process → the job process's pid."""
    import psutil

    base = f"http://127.0.0.1:{port}/"
    line = proc.stderr.readline()
    assert "dashboard at " in line, line
    with urllib.request.urlopen(base + "_dash-dependencies", timeout=60) as response:
        specs = {spec["output"]: spec for spec in json.loads(response.read())}
    chosen = http_callback(base, specs, "..tex-images.data", [None, "sample:brick"], [None, None], changed=1)
    images = chosen["response"]["tex-images"]["data"]
    started = http_callback(base, specs, "..tex-result.src", [1], [images, 64, 5000, 0, ["features.1"]])
    assert "cacheKey" in started, started
    server = psutil.Process(proc.pid)
    forked: list = []                 # a job is a fork of the server (the janitor is another program)
    deadline = time.time() + 30
    while not forked and time.time() < deadline:
        forked = [p for p in server.children() if p.cmdline() == server.cmdline()]
        time.sleep(0.1)
    assert forked, [p.cmdline() for p in server.children()]
    return forked[0].pid


def gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition, timeout: float) -> float:  # noqa: ANN001
    """Seconds until `condition()` held (fails the test after `timeout`)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_ends_the_server_and_its_running_job_without_a_traceback(tmp_path, stop):
    pytest.importorskip("psutil", reason="psutil (a dash[diskcache] dependency) lists the job processes")
    port = free_port()
    proc = dashboard(tmp_path, "--port", str(port))
    try:
        job = start_texture_job(proc, port)
        time.sleep(1.0)                               # the job is running
        assert not gone(job)
        start = time.monotonic()
        proc.send_signal(stop)
        proc.wait(timeout=30)
        stopped = time.monotonic() - start
        wait_until(lambda: gone(job), 5)
    finally:
        proc.kill()
        proc.wait()
    err = proc.stderr.read()
    assert stopped < 5, stopped
    assert proc.returncode in (0, 130, 143), (proc.returncode, err)   # a stop, not a crash
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not list(tmp_path.glob("vis-dashboard-*"))


def test_a_killed_server_leaves_no_job_and_no_cache(tmp_path):
    pytest.importorskip("psutil", reason="psutil (a dash[diskcache] dependency) lists the job processes")
    port = free_port()
    proc = dashboard(tmp_path, "--port", str(port))
    try:
        job = start_texture_job(proc, port)
        assert len(list(tmp_path.glob("vis-dashboard-*"))) == 1
        proc.kill()                                   # kill -9: no exit handler runs
        proc.wait(timeout=10)
        seconds = wait_until(lambda: gone(job), 5)
        wait_until(lambda: not list(tmp_path.glob("vis-dashboard-*")), 5)
    finally:
        proc.kill()
        proc.wait()
    assert seconds < 5


def test_jobs_beyond_the_process_cap_are_refused_with_a_message(app, monkeypatch):
    from test_dashboard_limits import tex_states

    manager = app._background_manager
    assert manager.process_limit == app.vis_context.max_jobs + 32
    monkeypatch.setattr(manager, "process_limit", 0)
    response, _ = post(app, "..tex-result.src", [1], tex_states(app, 16, 2))
    assert_calm(response, 200)
    status = response.get_json()["response"]["tex-status"]["children"]
    assert status == "⚠ 0 jobs are running or waiting already; start this one when one of them has finished", status
