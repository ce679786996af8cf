"""Long work as Dash background callbacks: DiskcacheManager, progress + preview, cancel, results
cached by their parameters; plus the image pickers and job panels the Texture/Transfer tabs share.

Each job runs in its own process (``multiprocess``), so two browser sessions can run jobs at once
without blocking each other or the UI. For several users/machines use ``dash.CeleryManager`` with
Redis instead (see the README).
"""
from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, ctx as cb, dcc, html

from vistoolbox.errors import VisError, VisRuntimeError, VisUsageError
from vistoolbox.files import write_json
from vistoolbox.images import open_image, png_bytes, save_png
from vistoolbox.models import LoadedModel
from vistoolbox.result import ImageResult
from vistoolbox.rundir import short_name

from . import inputs
from .context import Context, content_key
from .processes import job_process, stop_processes
from .serving import HEX_KEY, cache_url, data_uri
from .uploads import cache_image, cached_path, store_upload

__all__ = ["AppJobManager", "CACHE_EXPIRE_S", "MAX_JOB_PROCESSES", "cancelled_note", "download_button", "HIDDEN", "image_picker", "images_of",
           "job_panel", "layer_names", "loss_figure", "make_manager", "pick_options", "PREVIEW_EVERY_S",
           "queued_text", "register_download", "register_job", "register_picker", "resolve_pick", "run_job", "sample_image",
           "SAMPLES", "snapshot_every", "Throttle", "upload_options"]

#: Job processes one dashboard holds beyond its `max_jobs` running ones (waiting in the slots' queue
#: of 16, or about to be refused by it); a job asked for beyond them is refused with a message.
MAX_JOB_PROCESSES = 32
#: Cached job results expire after a week.
CACHE_EXPIRE_S = 7 * 24 * 3600
#: scikit-image samples offered in the pickers (name → loader name).
SAMPLES = ("brick", "grass", "gravel", "coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry")
PREVIEW_EVERY_S = 0.5


def in_job_process() -> None:
    """Call first in every background callback. Its body runs in a process forked from the server;
    if the server already ran torch on several threads, the GNU OpenMP thread team it made is copied
    into the child without its threads, and the child's first parallel op waits for them forever.
    On one thread torch never enters OpenMP, so the job runs (single-threaded)."""
    import torch

    torch.set_num_threads(1)


class AppJobManager(dash.DiskcacheManager):
    """A disk-backed background-callback manager that runs only its own app's job functions, each in
    a process that ends with the server (:mod:`.processes`), at most `process_limit` at once.

    Dash registers every background callback with every live manager under a key made of the
    callback's outputs and source, so in a process holding several apps (tests, a WSGI host) the app
    made last would otherwise run its closures — its runs and model — for the other apps' jobs. The
    manager takes registrations until :meth:`seal` (called once its app's callbacks are registered)."""

    sealed: bool = False
    process_limit: int = MAX_JOB_PROCESSES   # job processes at once (make_manager: max_jobs more)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.processes: list = []   # this manager's job processes (running or waiting for a slot)
        self._started = threading.Lock()

    def call_job_fn(self, key, job_fn, args, context):  # noqa: ANN001, ANN201 - Dash's signature
        """Start a job as Dash does, in a process that watches the server (daemonic: the process's
        exit ends it too), unless `process_limit` are already running or waiting."""
        from multiprocess import Process

        with self._started:
            self.processes = [p for p in self.processes if p.is_alive()]
            if len(self.processes) >= self.process_limit:
                raise VisRuntimeError(f"{len(self.processes)} jobs are running or waiting already; start this "
                                      "one when one of them has finished")
            process = Process(target=job_process, daemon=True,
                              args=(os.getpid(), job_fn, (key, self._make_progress_key(key), args, context)))
            process.start()
            self.processes.append(process)
        return process.pid

    def stop_jobs(self) -> None:
        """End every job process now (the server is stopping)."""
        with self._started:
            stop_processes(self.processes)
            self.processes = []

    def register(self, key, fn, progress) -> None:  # noqa: ANN001 - Dash's signature
        if not self.sealed:
            super().register(key, fn, progress)

    def seal(self) -> None:
        """Take no further registrations: later apps' callbacks with the same key stay theirs."""
        self.sealed = True


def make_manager(ctx: Context) -> AppJobManager:
    """A disk-backed background-callback manager whose cache lives in the dashboard's cache folder."""
    import sqlite3

    import diskcache

    try:
        cache = diskcache.Cache(str(ctx.cache_dir / "diskcache"))
    except sqlite3.Error as exc:  # diskcache keeps its index in SQLite: a full or broken disk shows here
        raise VisRuntimeError(f"cannot use the job cache in {str(ctx.cache_dir)!r}: {exc}") from None
    manager = AppJobManager(cache, cache_by=[lambda: "vistoolbox-jobs-v1"], expire=CACHE_EXPIRE_S)
    manager.process_limit = ctx.max_jobs + MAX_JOB_PROCESSES
    atexit.register(manager.stop_jobs)   # a stop (Ctrl+C, SIGTERM) never waits for a running job
    return manager


# --------------------------------------------------------------------------- image pickers

def sample_image(name: str):  # noqa: ANN201
    """A scikit-image sample as a PIL RGB image."""
    from PIL import Image
    from skimage import data

    if name not in SAMPLES:
        raise VisError(f"unknown sample {name!r}")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def pick_options(ctx: Context) -> list[dict[str, str]]:
    options = [{"label": f"sample: {name}", "value": f"sample:{name}"} for name in SAMPLES]
    for i, run in enumerate(ctx.runs):
        options += [{"label": f"run {i}: {name}", "value": f"run:{i}:{j}"}   # runs whose images may be read
                    for j, name in enumerate(run.images[:100] if not run.dataset_problem else [])]
    return options


def resolve_pick(ctx: Context, value: str) -> str:
    """A picker value (``sample:brick`` / ``run:0:12`` / ``upload:<key>``) → cached image key."""
    kind, _, rest = value.partition(":")
    if kind == "upload":
        return cached_path(ctx, rest).stem
    if kind == "sample":
        return cache_image(ctx, sample_image(rest))[0]
    if kind == "run":
        run, index = (int(v) for v in rest.split(":"))
        return cache_image(ctx, open_image(ctx.runs[run].image_path(index)))[0]
    raise VisError(f"unknown image choice {value!r}")


def image_picker(ctx: Context, prefix: str, label: str, multiple: bool = False, value: str | None = None) -> html.Div:
    """Upload box + sample/run picker + the chosen images (``<prefix>-images`` store holds their keys)."""
    return html.Div(className="picker", children=[
        html.H4(label),
        dcc.Upload(id=f"{prefix}-upload", className="upload", max_size=ctx.max_upload_bytes, accept="image/*",
                   multiple=multiple, children=html.Div(
                       [f"drop image{'s' if multiple else ''} or ", html.A("choose"),
                        f" (≤ {ctx.max_upload_bytes // 2**20} MiB"
                        + (f" each, up to {inputs.MAX_IMAGES})" if multiple else ")")])),
        dcc.Dropdown(id=f"{prefix}-pick", options=pick_options(ctx), value=([value] if multiple else value)
                     if value else None, multi=multiple, placeholder="…or pick"),
        dcc.Store(id=f"{prefix}-images"),
        html.Div(id=f"{prefix}-message", className="message"),
        html.Div(id=f"{prefix}-thumbs", className="thumbs"),
    ])


def upload_options(ctx: Context, contents: Any, names: Any) -> list[dict[str, str]]:
    """Store uploaded file(s) (at most :data:`~.inputs.MAX_IMAGES`, checked before any is decoded)
    → dropdown options ``upload: <file name>`` whose values name them."""
    items = inputs.image_list(contents, "uploads")
    files = names if isinstance(names, list) and len(names) == len(items) else [None] * len(items)
    return [{"label": f"upload: {str(name or 'image')[:80]}", "value": f"upload:{store_upload(ctx, item)[0]}"}
            for item, name in zip(items, files)]


def register_picker(app: dash.Dash, ctx: Context, prefix: str, multiple: bool = False) -> None:
    """An upload becomes an option of the dropdown and its value, so the dropdown always shows what
    will run (an upload replaces the choice; more can be added to a multiple choice)."""

    @app.callback(Output(f"{prefix}-images", "data"), Output(f"{prefix}-message", "children"),
                  Output(f"{prefix}-thumbs", "children"), Output(f"{prefix}-pick", "options"),
                  Output(f"{prefix}-pick", "value"),
                  Input(f"{prefix}-upload", "contents"), Input(f"{prefix}-pick", "value"),
                  State(f"{prefix}-upload", "filename"), State(f"{prefix}-pick", "options"))
    def pick(contents, picked, names, options):  # noqa: ANN001, ANN202
        value = dash.no_update
        try:
            if cb.triggered_id == f"{prefix}-upload" and contents:
                added = upload_options(ctx, contents, names)
                known = {o["value"] for o in options or []}
                options = [*(options or []), *[o for o in added if o["value"] not in known]]
                value = picked = [o["value"] for o in added] if multiple else added[0]["value"]
            keys = [resolve_pick(ctx, v) for v in dict.fromkeys(inputs.image_list(picked, "images"))]
        except (VisError, ValueError, IndexError) as exc:
            return dash.no_update, f"⚠ {exc}", dash.no_update, dash.no_update, dash.no_update
        thumbs = [html.Img(src=cache_url(k), className="thumb") for k in keys]
        return {"keys": keys}, "", thumbs, options, value


# --------------------------------------------------------------------------- job panels

def job_panel(prefix: str, title: str) -> html.Div:
    """Run/cancel buttons, progress bar, status and note, live preview, result with its download
    button (shown only with a result), and the loss curves (shown only after a run)."""
    return html.Div(className="job", children=[
        html.Div(className="pickers", children=[
            html.Button(f"run {title}", id=f"{prefix}-run", n_clicks=0, className="primary"),
            html.Button("cancel", id=f"{prefix}-cancel", n_clicks=0, disabled=True),
            html.Progress(id=f"{prefix}-progress", value="0", max="1"),
            html.Span(id=f"{prefix}-status", className="status"),
            html.Span(id=f"{prefix}-note", className="message"),
        ]),
        html.Div(className="row", children=[
            html.Div(className="col", children=[
                html.H4("preview"), html.Img(id=f"{prefix}-preview", className="result"),
                html.Div("a snapshot every few steps while a run is going", className="hint")]),
            html.Div(className="col", children=[
                html.H4("result"), html.Img(id=f"{prefix}-result", className="result"), *download_button(prefix),
                html.Div(f"no result yet: press “run {title}”", className="hint")]),
            html.Div(className="col wide", children=[dcc.Graph(id=f"{prefix}-loss", config={"displayModeBar": False},
                                                               style=HIDDEN)]),
        ]),
    ])


HIDDEN = {"display": "none"}


def snapshot_every(steps: int) -> int:
    """Steps between preview snapshots: ten per run, at least one every 10 steps."""
    return max(1, min(10, steps // 10))


def cancelled_note(step: Any, steps: Any, kept: str = "nothing was saved") -> str:
    """``cancelled at step 23/300; nothing was saved`` (no step when none was reported yet)."""
    where = f" at step {step}/{steps}" if step and steps and str(step) != "0" else ""
    return f"cancelled{where}; {kept}"


def layer_names(model: LoadedModel) -> Callable[[str], str]:
    """Canonical layer name → the name people use (its first alias), for legends and labels."""
    return lambda name: short_name(name, model.aliases_of(name))


def loss_figure(record: dict, rename: Callable[[str], str] = str) -> go.Figure:
    """Every loss term of every stage against the global step (log scale); a term's layer (after the
    colon, ``style:features.1``) is shown as `rename` says (``style:relu1_1``)."""
    fig = go.Figure()
    offset = 0
    for index, stage in enumerate(record.get("stages", [])):
        curves = stage.get("curves", {})
        for name, values in curves.items():
            term, sep, layer = name.partition(":")
            label = f"{term}:{rename(layer)}" if sep else name
            fig.add_scatter(x=list(range(offset + 1, offset + len(values) + 1)), y=values, mode="lines",
                            name=label + (f" (stage {index})" if len(record["stages"]) > 1 else ""))
        offset += max((len(v) for v in curves.values()), default=0)
    fig.update_layout(title="loss", yaxis_type="log", height=300, margin=dict(l=40, r=10, t=40, b=30),
                      xaxis_title="step")
    return fig


Work = Callable[[Context, dict[str, Any], Callable[[dict], None]], ImageResult]


def run_job(ctx: Context, kind: str, params: dict[str, Any], work: Work,
            set_progress: Callable[[tuple], None], check: Callable[[Context, dict], Any] | None = None) -> tuple[str, dict]:
    """Run `work` (or reuse its saved result) → (result key, record). `check` refuses bad parameters
    first; then the job waits for one of the dashboard's job slots (its place in the queue is shown
    as progress). Progress is throttled."""
    if check is not None:
        check(ctx, params)
    key = content_key(kind, sorted(params.items()), ctx.model_name, ctx.weights)
    out = ctx.jobs_dir / f"{key}.png"
    sidecar = out.with_suffix(".json")
    if out.is_file() and sidecar.is_file():
        import json

        return key, json.loads(sidecar.read_text())
    preview: list[str | None] = [None]
    throttle = Throttle()

    def report(info: dict) -> None:
        if "image" in info:
            preview[0] = data_uri(png_bytes(info["image"]))
        if throttle.due(info["step"] == info["steps_total"]):
            set_progress((str(info["step"]), str(info["steps_total"]), preview[0],
                          f"step {info['step']}/{info['steps_total']}"))

    with ctx.slots.slot(lambda place, waiting: set_progress(("0", "1", None, queued_text(ctx, place, waiting)))):
        result = work(ctx, params, report)
    image, record = result.images, result.record
    save_png(image, out)
    write_json(sidecar, {k: v for k, v in record.items() if k != "snapshots"})
    return key, record


def queued_text(ctx: Context, place: int, waiting: int) -> str:
    """``queued: 2 of 3 waiting (2 jobs run at a time)``."""
    runs = "1 job runs" if ctx.max_jobs == 1 else f"{ctx.max_jobs} jobs run"
    return f"queued: {place} of {waiting} waiting ({runs} at a time)"


class Throttle:
    """Says when progress is worth sending: at most every `every_s` seconds, and always when forced
    (the last step)."""

    def __init__(self, every_s: float = PREVIEW_EVERY_S) -> None:
        self.every_s = every_s
        self.last = float("-inf")

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            return True
        return False


def register_job(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager, prefix: str, kind: str,
                 states: list[State], names: list[str], work: Work,
                 check: Callable[[Context, dict], Any] | None = None) -> None:
    """The background callback of a job panel: `states` (named `names`) become `params` of `work`,
    after `check` (the server-side limits of the panel's controls)."""

    # A run clears the previous result and loss chart (they belong to other settings) and shows the
    # preview; a cancelled run keeps its last preview and says so in the note; nothing is saved.
    @app.callback(
        Output(f"{prefix}-result", "src"), Output(f"{prefix}-loss", "figure"), Output(f"{prefix}-loss", "style"),
        Output(f"{prefix}-status", "children"),
        Input(f"{prefix}-run", "n_clicks"), *states,
        background=True, manager=manager, prevent_initial_call=True, cache_args_to_ignore=[0],
        running=[(Output(f"{prefix}-run", "disabled"), True, False),
                 (Output(f"{prefix}-cancel", "disabled"), False, True),
                 (Output(f"{prefix}-result", "src"), None, None), (Output(f"{prefix}-loss", "style"), HIDDEN, HIDDEN)],
        cancel=[Input(f"{prefix}-cancel", "n_clicks")],
        progress=[Output(f"{prefix}-progress", "value"), Output(f"{prefix}-progress", "max"),
                  Output(f"{prefix}-preview", "src"), Output(f"{prefix}-status", "children")],
    )
    def job(set_progress, _n, *values):  # noqa: ANN001, ANN202
        in_job_process()
        params = dict(zip(names, values))
        set_progress(("0", "1", None, "starting"))
        try:
            key, record = run_job(ctx, kind, params, work, set_progress, check)
        except VisError as exc:
            return None, dash.no_update, HIDDEN, f"⚠ {exc}"
        seconds = record.get("timings", {}).get("total_seconds")
        done = f"done ({record.get('status', 'complete')}" + (f", {seconds:.1f} s)" if seconds else ")")
        return cache_url(key), loss_figure(record, layer_names(ctx.model)), {}, done

    @app.callback(Output(f"{prefix}-note", "children"), Input(f"{prefix}-run", "n_clicks"),
                  Input(f"{prefix}-cancel", "n_clicks"), State(f"{prefix}-progress", "value"),
                  State(f"{prefix}-progress", "max"), prevent_initial_call=True)
    def note(_run, _cancel, step, steps):  # noqa: ANN001, ANN202
        return cancelled_note(step, steps) if cb.triggered_id == f"{prefix}-cancel" else ""

    register_download(app, ctx, prefix, kind)


def download_button(prefix: str) -> list:
    """The PNG download button of the ``<prefix>-result`` image."""
    return [html.Button("download PNG", id=f"{prefix}-download-btn", n_clicks=0, className="download"),
            dcc.Download(id=f"{prefix}-download")]


def register_download(app: dash.Dash, ctx: Context, prefix: str, kind: str) -> None:
    """``<prefix>-download-btn`` sends the job result shown in ``<prefix>-result`` as ``<kind>_<key>.png``."""

    @app.callback(Output(f"{prefix}-download", "data"), Input(f"{prefix}-download-btn", "n_clicks"),
                  State(f"{prefix}-result", "src"), prevent_initial_call=True)
    def download(_n, src):  # noqa: ANN001, ANN202
        key = Path(str(src or "")).stem
        path = ctx.jobs_dir / f"{key}.png"
        if not HEX_KEY.match(key) or not path.is_file():
            raise dash.exceptions.PreventUpdate
        return dcc.send_file(str(path), filename=f"{kind}_{key[:8]}.png")


def images_of(ctx: Context, store: dict | None, what: str) -> list[Path]:
    """Files of the images in a picker store (cached PNGs), or a usage error naming what is missing."""
    keys = (store or {}).get("keys") or []
    if not keys:
        raise VisUsageError(f"choose a {what} image first")
    return [cached_path(ctx, k) for k in keys]
