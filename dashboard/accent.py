"""The Units tab's feature accentuation of one top-9 patch, made on demand: the "accentuate" button
under a patch runs :func:`vistoolbox.actmax.accentuate` from that patch (the unit's centre neuron,
the ``accentuate`` preset) as a background job with step n/N, the activation and a preview, and
caches the result in the run (``RUN/layers/<name>/accentuate/unit_0012_rank3.png`` + ``.json``,
the file ``vis maximize --from-topk`` writes). A cached patch is shown at once."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import dash
from dash import ALL, Input, Output, State, dcc, html

from vistoolbox.actmax import accentuate, topk_seeds
from vistoolbox.errors import VisError
from vistoolbox.files import read_json

from .context import Context
from . import inputs
from .jobs import cancelled_note, in_job_process, queued_text
from .optimise import PREVIEW_EVERY, reporter, versioned_url

__all__ = ["accentuate_patch", "button", "done_text", "panel", "register"]

SHOWN, HIDDEN = {}, {"display": "none"}


def button(rank: int) -> html.Button:
    """The button under top-9 patch `rank`."""
    return html.Button("accentuate", id={"type": "acc-run", "rank": rank}, n_clicks=0, className="acc-run",
                       title="feature accentuation: push the unit up in this patch, staying close to it")


def panel() -> html.Div:
    """The accentuation column of a unit's detail."""
    return html.Div(id="acc-panel", className="col", children=[
        html.H4("feature accentuation (a patch's button)"),
        dcc.Store(id="acc-request"),
        html.Img(id="acc-view", className="max-view"),
        html.Img(id="acc-preview", className="max-view", style=HIDDEN, alt="preview"),
        html.Div(id="acc-status", className="status"),
        html.Div(id="acc-note", className="message"),
        html.Div(className="pickers", children=[
            html.Button("cancel", id="acc-cancel", n_clicks=0, disabled=True),
            html.Progress(id="acc-progress", value="0", max="1", style=HIDDEN)]),
    ])


def accentuate_patch(ctx: Context, run_index: int, layer: str, unit: int, rank: int,
                     progress: Callable[[dict], None] | None = None) -> Path:
    """The accentuation of the unit's top-k patch `rank`, computed into the run unless already
    there; plausibility against the run's top-k patches is in its record."""
    run = ctx.runs[run_index]
    path = run.accentuated(layer, unit, rank)
    if not path.is_file():
        seeds, sources = topk_seeds(run.root, layer, unit, [rank])
        result = accentuate(ctx.model_for(run), run.resolve(layer), seeds, [unit], neuron=True, run=run.root,
                            sources=sources, quiet=True, progress=progress, snapshot_every=PREVIEW_EVERY)
        if result.record["interrupted"]:
            raise KeyboardInterrupt  # a half-done image is not cached
        result.save_unit(0, path)
    return path


def done_text(unit: int, rank: int, record: dict | None, cached: bool) -> str:
    """``unit 7, patch #4: accentuated, cached in the run · activation 1.2 → 5.6 · plausibility 0.93``."""
    text = f"unit {unit}, patch #{rank + 1}: " + ("cached in the run" if cached else "accentuated, cached in the run")
    record = record or {}
    start, final = record.get("activation_initial"), record.get("activation_final")  # one unit's record: numbers
    if isinstance(start, (int, float)) and isinstance(final, (int, float)):
        text += f" · activation {start:.4g} → {final:.4g}"
    if isinstance(record.get("plausibility"), (int, float)):
        text += f" · plausibility {record['plausibility']:.3g}"
    return text


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager | None = None) -> None:
    """Wire the buttons, the background job, its cancel note and the reset on a new unit."""

    @app.callback(Output("acc-request", "data"), Input({"type": "acc-run", "rank": ALL}, "n_clicks"),
                  State("selection", "data"), prevent_initial_call=True)
    def request(clicks, sel):  # noqa: ANN001, ANN202
        trigger = dash.ctx.triggered_id
        if not sel or not isinstance(trigger, dict) or not dash.ctx.triggered[0]["value"]:
            raise dash.exceptions.PreventUpdate
        return {**sel, "rank": int(trigger["rank"]), "click": sum(c or 0 for c in clicks)}  # a new value per click

    @app.callback(
        Output("acc-view", "src", allow_duplicate=True), Output("acc-status", "children", allow_duplicate=True),
        Input("acc-request", "data"), background=True, manager=manager, prevent_initial_call=True,
        running=[(Output("acc-cancel", "disabled"), False, True), (Output("acc-progress", "style"), SHOWN, HIDDEN),
                 (Output("acc-preview", "style"), SHOWN, HIDDEN), (Output("acc-view", "style"), HIDDEN, SHOWN)],
        progress=[Output("acc-progress", "value"), Output("acc-progress", "max"), Output("acc-preview", "src"),
                  Output("acc-status", "children")],
        cancel=[Input("acc-cancel", "n_clicks")])
    def run_job(set_progress, req):  # noqa: ANN001, ANN202
        if not req:
            raise dash.exceptions.PreventUpdate
        try:  # from the browser: a unit that exists, a top-9 rank
            sel = inputs.selection(ctx, req)
            rank = inputs.count(req.get("rank"), "rank", 0, 8)
        except VisError as exc:
            return None, f"⚠ {exc}"
        in_job_process()
        unit, layer, run = sel["unit"], sel["layer"], ctx.runs[sel["run"]]
        cached = run.accentuated(layer, unit, rank).is_file()
        report = reporter(set_progress, unit, f"patch #{rank + 1}, ")
        try:
            if cached:
                path = run.accentuated(layer, unit, rank)
            else:
                set_progress(("0", "1", None, f"unit {unit}, patch #{rank + 1}: starting"))
                with ctx.slots.slot(lambda place, waiting: set_progress((
                        "0", "1", None, f"unit {unit}, patch #{rank + 1}: {queued_text(ctx, place, waiting)}"))):
                    path = accentuate_patch(ctx, sel["run"], layer, unit, rank, report)
        except VisError as exc:
            return None, f"⚠ unit {unit}, patch #{rank + 1}: {exc}"
        try:
            record = read_json(path.with_suffix(".json"))
        except (OSError, ValueError):
            record = None
        return versioned_url(ctx, sel["run"], path), done_text(unit, rank, record, cached)

    @app.callback(Output("acc-note", "children"), Input("acc-cancel", "n_clicks"), Input("selection", "data"),
                  State("acc-progress", "value"), State("acc-progress", "max"), State("acc-request", "data"),
                  prevent_initial_call=True)
    def note(_n, sel, step, steps, req):  # noqa: ANN001, ANN202
        if dash.ctx.triggered_id != "acc-cancel" or not req:
            return ""
        return f"unit {req['unit']}, patch #{int(req['rank']) + 1}: {cancelled_note(step, steps)}"

    @app.callback(Output("acc-view", "src", allow_duplicate=True), Output("acc-status", "children", allow_duplicate=True),
                  Input("selection", "data"), prevent_initial_call=True)
    def reset(sel):  # noqa: ANN001, ANN202
        if not sel:
            raise dash.exceptions.PreventUpdate
        return None, "a patch's \"accentuate\" button shows what in it drives the unit"
