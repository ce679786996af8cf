"""The Units tab's optimised image of one unit, made on demand: :func:`vistoolbox.maximize_layer`
into the run (``RUN/layers/<name>/maximize/``) as a background job that shows step n/N, the
current activation and a preview every few steps. Once the run holds the image the button says
"recompute" (and overwrites it); cancel says where it stopped and leaves the run as it was."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import dash
from dash import Input, Output, State, dcc, html

from vistoolbox import maximize_layer
from vistoolbox.errors import VisError
from vistoolbox.images import png_bytes

from . import inputs
from .context import Context
from .jobs import Throttle, cancelled_note, in_job_process, queued_text
from .serving import data_uri, run_url

__all__ = ["button_label", "optimise_unit", "panel", "PREVIEW_EVERY", "progress_text",
           "register", "reporter", "versioned_url"]

#: Steps between two previews of the image being optimised.
PREVIEW_EVERY = 8
#: The steps the page offers, enforced on the server too.
MIN_STEPS, MAX_STEPS = 8, 4096
SHOWN, HIDDEN = {}, {"display": "none"}


def panel() -> html.Div:
    """The optimised-image column of a unit's detail."""
    return html.Div(id="max-panel", className="col", children=[
        html.H4("optimised image"),
        html.Img(id="max-view", className="max-view"),
        html.Img(id="max-preview", className="max-view", style=HIDDEN, alt="preview"),
        html.Div(id="max-status", className="status"),
        html.Div(id="max-note", className="message"),
        html.Div(className="pickers", children=[
            html.Label(["steps ", dcc.Input(id="max-steps", type="number", min=MIN_STEPS, max=MAX_STEPS, step=1, value=128,
                                            className="number")]),
            html.Button("compute optimised image", id="max-run", n_clicks=0),
            html.Button("cancel", id="max-cancel", n_clicks=0, disabled=True),
            html.Progress(id="max-progress", value="0", max="1", style=HIDDEN)]),
    ])


def button_label(cached: bool) -> str:
    return "recompute optimised image" if cached else "compute optimised image"


def progress_text(unit: int, info: dict) -> str:
    """``unit 3: step 37/128 · activation 12.5`` (the mean over the batch, here one unit)."""
    act = sum(info["activation"]) / len(info["activation"])
    return f"unit {unit}: step {info['step']}/{info['steps_total']} · activation {act:.4g}"


def reporter(set_progress: Callable[[tuple], None], unit: int, prefix: str = "") -> Callable[[dict], None]:
    """A loop's `progress(info)` that sends (step, steps, preview data URI, ``prefix`` + status
    text) to a background job's progress outputs, throttled (the last step always goes)."""
    preview: list[str | None] = [None]
    throttle = Throttle()

    def report(info: dict) -> None:
        if "images" in info:
            preview[0] = data_uri(png_bytes(info["images"][0]))
        if throttle.due(info["step"] == info["steps_total"]):
            set_progress((str(info["step"]), str(info["steps_total"]), preview[0], prefix + progress_text(unit, info)))

    return report


def versioned_url(ctx: Context, run_index: int, path: Path) -> str:
    """The image's URL with its modification time, so a recomputed image is never a stale cached one."""
    return f"{run_url(ctx, run_index, path)}?v={path.stat().st_mtime_ns}"


def optimise_unit(ctx: Context, run_index: int, layer: str, unit: int, steps: int,
                  progress: Callable[[dict], None] | None = None, overwrite: bool = False) -> Path:
    """The unit's optimised image, computed with the library (``maximize_layer``) into the run
    unless already there (`overwrite` recomputes it); `progress(info)` sees every step and a
    snapshot every PREVIEW_EVERY steps."""
    run = ctx.runs[run_index]
    path = run.maximized(layer, unit)
    if overwrite or not path.is_file():
        maximize_layer(ctx.model_for(run), layer, run.root, units=[unit], steps=int(steps), quiet=True,
                       overwrite=overwrite, progress=progress, snapshot_every=PREVIEW_EVERY)
    return path


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager | None = None) -> None:
    """Wire the panel: the background job, its cancel note and the button label of the selected unit."""

    @app.callback(
        Output("max-view", "src", allow_duplicate=True), Output("max-status", "children", allow_duplicate=True),
        Output("max-run", "children"),
        Input("max-run", "n_clicks"), State("selection", "data"), State("max-steps", "value"),
        background=True, manager=manager, prevent_initial_call=True,
        running=[(Output("max-run", "disabled"), True, False), (Output("max-cancel", "disabled"), False, True),
                 (Output("max-progress", "style"), SHOWN, HIDDEN), (Output("max-preview", "style"), SHOWN, HIDDEN),
                 (Output("max-view", "style"), HIDDEN, SHOWN)],
        progress=[Output("max-progress", "value"), Output("max-progress", "max"), Output("max-preview", "src"),
                  Output("max-status", "children")],
        cancel=[Input("max-cancel", "n_clicks")])
    def optimise(set_progress, n, sel, steps):  # noqa: ANN001, ANN202
        if not n or not sel:
            raise dash.exceptions.PreventUpdate
        try:  # both come from the browser: a unit that exists, steps within the page's limits
            sel = inputs.selection(ctx, sel)
            steps = inputs.count(steps, "steps", MIN_STEPS, MAX_STEPS, 128)
        except VisError as exc:
            return dash.no_update, f"⚠ {exc}", dash.no_update
        in_job_process()
        unit, run = sel["unit"], ctx.runs[sel["run"]]
        report = reporter(set_progress, unit)

        cached = run.maximized(sel["layer"], unit).is_file()
        set_progress(("0", str(steps), None, f"unit {unit}: starting ({'recomputing' if cached else 'computing'})"))
        try:
            with ctx.slots.slot(lambda place, waiting: set_progress(("0", str(steps), None,
                                                                      f"unit {unit}: {queued_text(ctx, place, waiting)}"))):
                path = optimise_unit(ctx, sel["run"], sel["layer"], unit, steps, report, overwrite=cached)
        except VisError as exc:
            return dash.no_update, f"⚠ {exc}", button_label(cached)
        record = run.maximized_record(sel["layer"], unit) or {}
        final = record.get("activation_final")
        done = f"unit {unit}: computed and cached in the run" + (f" · activation {final:.4g}" if final is not None else "")
        return versioned_url(ctx, sel["run"], path), done, button_label(True)

    @app.callback(Output("max-note", "children"), Input("max-cancel", "n_clicks"), Input("selection", "data"),
                  State("max-progress", "value"), State("max-progress", "max"), prevent_initial_call=True)
    def note(_n, sel, step, steps):  # noqa: ANN001, ANN202
        if dash.ctx.triggered_id != "max-cancel" or not sel:
            return ""
        cached = ctx.runs[sel["run"]].maximized(sel["layer"], sel["unit"]).is_file()
        kept = "the run keeps its previous image" if cached else "nothing was saved"
        return f"unit {sel['unit']}: {cancelled_note(step, steps, kept)}"

    @app.callback(Output("max-run", "children", allow_duplicate=True), Input("selection", "data"),
                  prevent_initial_call=True)
    def label(sel):  # noqa: ANN001, ANN202
        if not sel:
            raise dash.exceptions.PreventUpdate
        return button_label(ctx.runs[sel["run"]].maximized(sel["layer"], sel["unit"]).is_file())
