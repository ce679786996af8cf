"""Transfer tab, two modes (``transfer-mode``):

* optimise (Gatys): content + one or more styles (blend weights), weights, colour preservation and
  size → style transfer as a background job (calls :func:`vistoolbox.style.transfer_style`);
* fast (trained stylizer): the same content + a stylizer found in the runs or the ``--stylizers``
  folder (``stylizer-select``) + ``stylizer-strength`` → one forward pass in an ordinary callback,
  shown in ``fast-result`` with its time and a download button (see :mod:`.stylizers`).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import dash
from dash import Input, Output, State, dcc, html

from vistoolbox.errors import VisError, VisUsageError
from vistoolbox.images import save_png
from vistoolbox.style import transfer_style
from vistoolbox.style.transfer import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT

from . import jobs, stylizers
from .context import Context, content_key
from .serving import cache_url

__all__ = ["fast_result", "layout", "parse_blend", "register", "work"]


def parse_blend(text: str | None, count: int) -> list[float] | None:
    """``"0.7, 0.3"`` → ``[0.7, 0.3]`` (None when empty); the count must match the styles."""
    if not text or not text.strip():
        return None
    try:
        weights = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise VisUsageError(f"blend weights must be numbers separated by commas, got {text!r}") from None
    if len(weights) != count:
        raise VisUsageError(f"{len(weights)} blend weights for {count} style images")
    return weights


def layout(ctx: Context) -> html.Div:
    """The Transfer tab (both modes)."""
    return html.Div(className="transfer", children=[
        dcc.RadioItems(id="transfer-mode", value="optimise", inline=True, className="mode", options=MODES),
        html.Div(className="row", children=[
            html.Div(className="col", children=[jobs.image_picker(ctx, "tr-content", "content", value="sample:chelsea")]),
            fast_options(ctx),
            html.Div(id="tr-style-col", className="col", children=[jobs.image_picker(ctx, "tr-style", "styles", multiple=True,
                                                                  value="sample:immunohistochemistry")]),
            html.Div(id="tr-options-col", className="col wide", children=[
                html.Label(["blend weights ", dcc.Input(id="tr-blend", type="text", placeholder="e.g. 0.7, 0.3")]),
                html.Label(["style weight (log10) ", dcc.Slider(id="tr-style-weight", min=-1, max=6, step=0.5,
                                                                value=math.log10(DEFAULT_STYLE_WEIGHT))]),
                html.Label(["content weight ", dcc.Input(id="tr-content-weight", type="number", min=0,
                                                         value=DEFAULT_CONTENT_WEIGHT)]),
                html.Label(["colours ", dcc.Dropdown(id="tr-preserve", value="none", clearable=False,
                                                     options=["none", "luminance", "histogram"])]),
                html.Label(["size ", dcc.Input(id="tr-size", type="number", min=16, max=1024, step=1, value=192)]),
                html.Label(["steps ", dcc.Input(id="tr-steps", type="number", min=1, max=5000, step=1, value=100)]),
            ]),
        ]),
        html.Div(id="tr-job-panel", children=[jobs.job_panel("tr", "style transfer")]),
        fast_panel(),
    ])


MODES = [{"label": "optimise (Gatys)", "value": "optimise"}, {"label": "fast (trained stylizer)", "value": "fast"}]
HIDDEN = {"display": "none"}


def fast_options(ctx: Context) -> html.Div:
    """Stylizer dropdown (with its record), strength slider and size of the fast mode."""
    found, skipped = stylizers.find_stylizers(ctx)
    usable = [f.key for f in found if f.stylizer.mode == "image"]
    return html.Div(id="fast-options", className="col wide", style=HIDDEN, children=[
        html.H4("trained stylizer"),
        dcc.Dropdown(id="stylizer-select", options=stylizers.options(found), value=usable[0] if usable else None,
                     placeholder="no stylizer found" if not found else "choose a stylizer", clearable=False),
        html.Div(id="stylizer-info", className="status"),
        html.Div(id="stylizer-message", className="message", children=stylizer_message(ctx, found, skipped)),
        html.Label(["strength ", dcc.Slider(id="stylizer-strength", min=0, max=1, step=0.05, value=1.0,
                                            marks={0: "0 (content)", 0.5: "0.5", 1: "1"})]),
        html.Label(["size (longest side at most, px) ", dcc.Input(id="stylizer-size", type="number", min=16,
                                                          max=stylizers.MAX_FAST_SIZE, step=1, value=512)]),
    ])


def stylizer_message(ctx: Context, found: list, skipped: list[str]) -> list:
    """Skipped files, one per line; with nothing found, where stylizers are looked for."""
    lines = [html.Div(f"⚠ {line}") for line in skipped]
    if not found:
        where = ", ".join(str(folder) for _, folder in stylizers.stylizer_folders(ctx)) or "nowhere yet"
        lines.append(html.Div(f"No stylizer found (looked in: {where}). Train one with vis train-stylizer and "
                              "put it in RUN/stylizers/ or a folder given to vis dashboard --stylizers."))
    return lines


def fast_panel() -> html.Div:
    """Result, time and download of the fast mode."""
    return html.Div(id="fast-panel", className="job", style=HIDDEN, children=[
        html.Span(id="fast-status", className="status"),
        html.Div(className="row", children=[html.Div(className="col", children=[
            html.H4("result"), html.Img(id="fast-result", className="result"), *jobs.download_button("fast")])]),
    ])


def work(ctx: Context, params: dict[str, Any], report: Callable[[dict], None]):  # noqa: ANN201
    """Call the library: ``transfer_style`` with the chosen content and styles."""
    content = jobs.images_of(ctx, params["content"], "content")[0]
    styles = jobs.images_of(ctx, params["styles"], "style")
    steps = int(params["steps"] or 100)
    log_style = params["style_weight"]
    style_weight = DEFAULT_STYLE_WEIGHT if log_style is None else 10 ** float(log_style)
    content_weight = DEFAULT_CONTENT_WEIGHT if params["content_weight"] is None else float(params["content_weight"])
    return transfer_style(ctx.model, content, styles, style_blend=parse_blend(params["blend"], len(styles)),
                          style_weight=style_weight, content_weight=content_weight,
                          preserve_colors=params["preserve"] or "none", size=int(params["size"] or 192),
                          steps=steps, snapshot_every=jobs.snapshot_every(steps), progress=report)


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager) -> None:
    """Wire the Transfer tab (both modes)."""
    jobs.register_picker(app, ctx, "tr-content")
    jobs.register_picker(app, ctx, "tr-style", multiple=True)
    names = ["content", "styles", "blend", "style_weight", "content_weight", "preserve", "size", "steps"]
    states = [State("tr-content-images", "data"), State("tr-style-images", "data"), State("tr-blend", "value"),
              State("tr-style-weight", "value"), State("tr-content-weight", "value"), State("tr-preserve", "value"),
              State("tr-size", "value"), State("tr-steps", "value")]
    jobs.register_job(app, ctx, manager, "tr", "transfer", states, names, work)
    register_fast(app, ctx)


def fast_result(ctx: Context, content: dict | None, value: str | None, strength: float | None,
                size: int | None) -> tuple[str, str]:
    """Run the fast mode and save its result in the jobs folder → (result key, status line)."""
    path = jobs.images_of(ctx, content, "content")[0]
    image, record = stylizers.fast_stylize(ctx, path, value, strength, size)
    key = content_key("fast", *record["file"], path.name, record["strength"], size)
    save_png(image, ctx.jobs_dir / f"{key}.png")
    h, w = record["size"]
    return key, f"done in {record['seconds'] * 1000:.0f} ms ({w}×{h} px, strength {record['strength']:g})"


def register_fast(app: dash.Dash, ctx: Context) -> None:
    """Mode switch (shows one mode's controls, rescans the stylizers) and the fast-mode callback."""

    @app.callback(Output("tr-style-col", "style"), Output("tr-options-col", "style"), Output("tr-job-panel", "style"),
                  Output("fast-options", "style"), Output("fast-panel", "style"),
                  Output("stylizer-select", "options"), Output("stylizer-message", "children"),
                  Input("transfer-mode", "value"))
    def switch(mode):  # noqa: ANN001, ANN202
        fast = mode == "fast"
        found, skipped = stylizers.find_stylizers(ctx)
        shown = [HIDDEN if fast else {}] * 3 + [{} if fast else HIDDEN] * 2
        return *shown, stylizers.options(found), stylizer_message(ctx, found, skipped)

    @app.callback(Output("stylizer-info", "children"), Input("stylizer-select", "value"))
    def info(value):  # noqa: ANN001, ANN202
        try:
            return stylizers.describe(ctx, stylizers.lookup(ctx, value))
        except VisError as exc:
            return f"⚠ {exc}"

    @app.callback(Output("fast-result", "src"), Output("fast-status", "children"),
                  Input("transfer-mode", "value"), Input("tr-content-images", "data"),
                  Input("stylizer-select", "value"), Input("stylizer-strength", "value"),
                  Input("stylizer-size", "value"), prevent_initial_call=True)
    def fast(mode, content, value, strength, size):  # noqa: ANN001, ANN202
        if mode != "fast":
            raise dash.exceptions.PreventUpdate
        try:
            key, status = fast_result(ctx, content, value, strength, size)
        except VisError as exc:
            return dash.no_update, f"⚠ {exc}"
        return cache_url(key), status

    jobs.register_download(app, ctx, "fast", "stylized")
