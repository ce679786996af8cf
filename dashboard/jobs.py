"""Long work as Dash background callbacks: DiskcacheManager, progress + preview, cancel, results
cached by their parameters; plus the image pickers and job panels the Texture/Transfer tabs share.

Each job runs in its own process (``multiprocess``), so two browser sessions can run jobs at once
without blocking each other or the UI. For several users/machines use ``dash.CeleryManager`` with
Redis instead (see the README).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, ctx as cb, dcc, html

from vistoolbox.errors import VisError, VisRuntimeError, VisUsageError
from vistoolbox.files import write_json
from vistoolbox.images import open_image, png_bytes, save_png
from vistoolbox.result import ImageResult

from .context import Context, content_key
from .serving import HEX_KEY, cache_url
from .uploads import cache_image, cached_path, store_upload

__all__ = ["CACHE_EXPIRE_S", "download_button", "image_picker", "images_of", "job_panel", "loss_figure",
           "make_manager", "pick_options", "PREVIEW_EVERY_S", "register_download", "register_job", "register_picker",
           "resolve_pick", "run_job", "sample_image", "SAMPLES"]

#: Cached job results expire after a week.
CACHE_EXPIRE_S = 7 * 24 * 3600
#: scikit-image samples offered in the pickers (name → loader name).
SAMPLES = ("brick", "grass", "gravel", "coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry")
PREVIEW_EVERY_S = 0.5


def make_manager(ctx: Context) -> dash.DiskcacheManager:
    """A disk-backed background-callback manager whose cache lives in the dashboard's cache folder."""
    import sqlite3

    import diskcache

    try:
        cache = diskcache.Cache(str(ctx.cache_dir / "diskcache"))
    except sqlite3.Error as exc:  # diskcache keeps its index in SQLite: a full or broken disk shows here
        raise VisRuntimeError(f"cannot use the job cache in {str(ctx.cache_dir)!r}: {exc}") from None
    return dash.DiskcacheManager(cache, cache_by=[lambda: "vistoolbox-jobs-v1"], expire=CACHE_EXPIRE_S)


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
        options += [{"label": f"run {i}: {name}", "value": f"run:{i}:{j}"} for j, name in enumerate(run.images[:100])]
    return options


def resolve_pick(ctx: Context, value: str) -> str:
    """A picker value (``sample:brick`` / ``run:0:12``) → cached image key."""
    kind, _, rest = value.partition(":")
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
                        f" (≤ {ctx.max_upload_bytes // 2**20} MiB)"])),
        dcc.Dropdown(id=f"{prefix}-pick", options=pick_options(ctx), value=([value] if multiple else value)
                     if value else None, multi=multiple, placeholder="…or pick"),
        dcc.Store(id=f"{prefix}-images"),
        html.Div(id=f"{prefix}-message", className="message"),
        html.Div(id=f"{prefix}-thumbs", className="thumbs"),
    ])


def register_picker(app: dash.Dash, ctx: Context, prefix: str, multiple: bool = False) -> None:
    @app.callback(Output(f"{prefix}-images", "data"), Output(f"{prefix}-message", "children"),
                  Output(f"{prefix}-thumbs", "children"),
                  Input(f"{prefix}-upload", "contents"), Input(f"{prefix}-pick", "value"))
    def pick(contents, picked):  # noqa: ANN001, ANN202
        keys: list[str] = []
        try:
            if cb.triggered_id == f"{prefix}-upload" and contents:
                for item in contents if isinstance(contents, list) else [contents]:
                    keys.append(store_upload(ctx, item)[0])
            elif picked:
                keys = [resolve_pick(ctx, v) for v in (picked if isinstance(picked, list) else [picked])]
        except (VisError, ValueError, IndexError) as exc:
            return dash.no_update, f"⚠ {exc}", dash.no_update
        thumbs = [html.Img(src=cache_url(k), className="thumb") for k in keys]
        return {"keys": keys}, "", thumbs


# --------------------------------------------------------------------------- job panels

def job_panel(prefix: str, title: str) -> html.Div:
    """Run/cancel buttons, progress bar, live preview, result, loss curves and a download button."""
    return html.Div(className="job", children=[
        html.Div(className="pickers", children=[
            html.Button(f"run {title}", id=f"{prefix}-run", n_clicks=0, className="primary"),
            html.Button("cancel", id=f"{prefix}-cancel", n_clicks=0, disabled=True),
            html.Progress(id=f"{prefix}-progress", value="0", max="1"),
            html.Span(id=f"{prefix}-status", className="status"),
        ]),
        html.Div(className="row", children=[
            html.Div(className="col", children=[html.H4("preview"), html.Img(id=f"{prefix}-preview", className="result")]),
            html.Div(className="col", children=[html.H4("result"), html.Img(id=f"{prefix}-result", className="result"),
                                                *download_button(prefix)]),
            html.Div(className="col wide", children=[dcc.Graph(id=f"{prefix}-loss", config={"displayModeBar": False})]),
        ]),
    ])


def loss_figure(record: dict) -> go.Figure:
    """Every loss term of every stage against the global step (log scale)."""
    fig = go.Figure()
    offset = 0
    for index, stage in enumerate(record.get("stages", [])):
        curves = stage.get("curves", {})
        for name, values in curves.items():
            fig.add_scatter(x=list(range(offset + 1, offset + len(values) + 1)), y=values, mode="lines",
                            name=f"{name}" + (f" (stage {index})" if len(record["stages"]) > 1 else ""))
        offset += max((len(v) for v in curves.values()), default=0)
    fig.update_layout(title="loss", yaxis_type="log", height=300, margin=dict(l=40, r=10, t=40, b=30),
                      xaxis_title="step")
    return fig


Work = Callable[[Context, dict[str, Any], Callable[[dict], None]], ImageResult]


def run_job(ctx: Context, kind: str, params: dict[str, Any], work: Work,
            set_progress: Callable[[tuple], None]) -> tuple[str, dict]:
    """Run `work` (or reuse its saved result) → (result key, record). Progress is throttled."""
    key = content_key(kind, sorted(params.items()), ctx.model_name, ctx.weights)
    out = ctx.jobs_dir / f"{key}.png"
    sidecar = out.with_suffix(".json")
    if out.is_file() and sidecar.is_file():
        import json

        return key, json.loads(sidecar.read_text())
    last = {"t": 0.0, "preview": None}

    def report(info: dict) -> None:
        if "image" in info:
            last["preview"] = "data:image/png;base64," + _b64(png_bytes(info["image"]))
        now = time.monotonic()
        if now - last["t"] >= PREVIEW_EVERY_S or info["step"] == info["steps_total"]:
            last["t"] = now
            set_progress((str(info["step"]), str(info["steps_total"]), last["preview"],
                          f"step {info['step']}/{info['steps_total']}"))

    result = work(ctx, params, report)
    image, record = result.images, result.record
    save_png(image, out)
    write_json(sidecar, {k: v for k, v in record.items() if k != "snapshots"})
    return key, record


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def register_job(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager, prefix: str, kind: str,
                 states: list[State], names: list[str], work: Work) -> None:
    """The background callback of a job panel: `states` (named `names`) become `params` of `work`."""

    @app.callback(
        Output(f"{prefix}-result", "src"), Output(f"{prefix}-loss", "figure"), Output(f"{prefix}-status", "children"),
        Input(f"{prefix}-run", "n_clicks"), *states,
        background=True, manager=manager, prevent_initial_call=True, cache_args_to_ignore=[0],
        running=[(Output(f"{prefix}-run", "disabled"), True, False),
                 (Output(f"{prefix}-cancel", "disabled"), False, True)],
        cancel=[Input(f"{prefix}-cancel", "n_clicks")],
        progress=[Output(f"{prefix}-progress", "value"), Output(f"{prefix}-progress", "max"),
                  Output(f"{prefix}-preview", "src"), Output(f"{prefix}-status", "children")],
    )
    def job(set_progress, _n, *values):  # noqa: ANN001, ANN202
        params = dict(zip(names, values))
        try:
            key, record = run_job(ctx, kind, params, work, set_progress)
        except VisError as exc:
            return dash.no_update, dash.no_update, f"⚠ {exc}"
        seconds = record.get("timings", {}).get("total_seconds")
        done = f"done ({record.get('status', 'complete')}" + (f", {seconds:.1f} s)" if seconds else ")")
        return cache_url(key), loss_figure(record), done

    register_download(app, ctx, prefix, kind)


def download_button(prefix: str) -> list:
    """The PNG download button of the ``<prefix>-result`` image."""
    return [html.Button("download PNG", id=f"{prefix}-download-btn", n_clicks=0), dcc.Download(id=f"{prefix}-download")]


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
