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
from vistoolbox.style.transfer import DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, PRESERVE

from . import inputs, jobs, stylizers
from .context import Context, content_key
from .serving import cache_url
from .texture import MAX_SIZE, MAX_STEPS

__all__ = ["check", "fast_result", "layout", "NO_DEMO_STYLIZER", "parse_blend", "register", "stylizer_message", "TRAIN_COMMAND",
           "usable_keys", "work"]


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
                                                     options=list(PRESERVE))]),
                html.Label(["size ", dcc.Input(id="tr-size", type="number", min=16, max=MAX_SIZE, step=1, value=192)]),
                html.Label(["steps ", dcc.Input(id="tr-steps", type="number", min=1, max=MAX_STEPS, step=1, value=100)]),
            ]),
        ]),
        html.Div(id="tr-job-panel", children=[jobs.job_panel("tr", "style transfer")]),
        fast_panel(),
    ])


MODES = [{"label": "optimise (Gatys)", "value": "optimise"}, {"label": "fast (trained stylizer)", "value": "fast"}]
HIDDEN = {"display": "none"}


def fast_options(ctx: Context) -> html.Div:
    """Stylizer dropdown (with its record), strength slider and size of the fast mode; with no usable
    stylizer, only the empty state that says how to make one."""
    found, skipped = stylizers.find_stylizers(ctx)
    usable = usable_keys(found)
    return html.Div(id="fast-options", className="col wide", style=HIDDEN, children=[
        html.H4("trained stylizer"),
        html.Div(id="stylizer-message", children=stylizer_message(ctx, found, skipped)),
        html.Div(id="fast-controls", style={} if usable else HIDDEN, children=[
            dcc.Dropdown(id="stylizer-select", options=stylizers.options(found), value=usable[0] if usable else None,
                         placeholder="choose a stylizer", clearable=False),
            html.Div(id="stylizer-info", className="status"),
            html.Label(["strength ", dcc.Slider(id="stylizer-strength", min=0, max=1, step=0.05, value=1.0,
                                                marks={0: "0 (content)", 0.5: "0.5", 1: "1"})]),
            html.Label(["size (longest side at most, px) ", dcc.Input(id="stylizer-size", type="number", min=16,
                                                              max=stylizers.MAX_FAST_SIZE, step=1, value=512)]),
        ]),
    ])


def usable_keys(found: list) -> list[str]:
    """Dropdown values of the stylizers that stylise content (image mode)."""
    return [f.key for f in found if f.stylizer.mode == "image"]


#: How to make a stylizer, as the empty state shows it (a small one: minutes on a CPU).
TRAIN_COMMAND = ("vis train-stylizer STYLE.png --dataset PHOTOS --size 96 --width 16 --res-blocks 3 --input-skip "
                 "--steps 300 --out RUN/stylizers/NAME.pt")


#: Why `vis demo` ships no stylizer (measured: see the README, section vis demo).
NO_DEMO_STYLIZER = ("vis demo makes none: even this small one takes about 1.5 minutes on a quiet 2-core CPU and 6 on "
                    "a busy one, which the demo's 10-minute budget cannot spare, and at 300 steps it is still more a "
                    "colour filter than the style; give it more steps for a better one.")


def stylizer_message(ctx: Context, found: list, skipped: list[str]) -> list:
    """Skipped files, one warning each; with no usable stylizer, one empty state: where stylizers are
    looked for and the command that makes one."""
    lines: list = [html.Div(f"⚠ {line}", className="message") for line in skipped]
    if not usable_keys(found):
        where = ", ".join(str(folder) for _, folder in stylizers.stylizer_folders(ctx)) or \
            "nowhere yet: open a run or start with --stylizers DIR"
        what = "no stylizer for content images (only texture-mode ones)" if found else "no trained stylizer yet"
        lines.append(html.Div(id="stylizer-empty", className="empty-state", children=[
            html.P(f"Fast mode needs a stylizer trained for one style, and there is {what} (looked in: {where})."),
            html.P(["Train one once per style, e.g.:"]), html.Pre(html.Code(TRAIN_COMMAND)),
            html.P(["then come back to fast mode (the list is read each time you switch to it). A stylizer in a "
                    "run's stylizers/ folder or in the folder given to ", html.Code("vis dashboard --stylizers DIR"),
                    " is found."]),
            html.P(NO_DEMO_STYLIZER, className="status")]))
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
    checked = check(ctx, params)
    content = jobs.images_of(ctx, params["content"], "content")[0]
    styles = jobs.images_of(ctx, params["styles"], "style")
    return transfer_style(ctx.model, content, styles, style_blend=parse_blend(checked["blend"], len(styles)),
                          style_weight=10 ** checked["style_weight"], content_weight=checked["content_weight"],
                          preserve_colors=checked["preserve"], size=checked["size"], steps=checked["steps"],
                          snapshot_every=jobs.snapshot_every(checked["steps"]), progress=report)


def check(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters within the page's limits (a forged request gets a one-line refusal)."""
    inputs.image_keys(params["content"])
    inputs.image_keys(params["styles"])
    blend = params["blend"]
    if blend is not None and (not isinstance(blend, str) or len(blend) > 200):
        raise VisUsageError("`blend` must be a short text of numbers, e.g. 0.7, 0.3")
    return {"blend": blend, "size": inputs.count(params["size"], "size", 16, MAX_SIZE, 192),
            "steps": inputs.count(params["steps"], "steps", 1, MAX_STEPS, 100),
            "style_weight": inputs.real(params["style_weight"], "style_weight", -1, 6,
                                        math.log10(DEFAULT_STYLE_WEIGHT)),
            "content_weight": inputs.real(params["content_weight"], "content_weight", 0, 1e6, DEFAULT_CONTENT_WEIGHT),
            "preserve": inputs.one_of(params["preserve"], "colours", PRESERVE, "none")}


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager) -> None:
    """Wire the Transfer tab (both modes)."""
    jobs.register_picker(app, ctx, "tr-content")
    jobs.register_picker(app, ctx, "tr-style", multiple=True)
    names = ["content", "styles", "blend", "style_weight", "content_weight", "preserve", "size", "steps"]
    states = [State("tr-content-images", "data"), State("tr-style-images", "data"), State("tr-blend", "value"),
              State("tr-style-weight", "value"), State("tr-content-weight", "value"), State("tr-preserve", "value"),
              State("tr-size", "value"), State("tr-steps", "value")]
    jobs.register_job(app, ctx, manager, "tr", "transfer", states, names, work, check)
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
                  Output("fast-controls", "style"), Output("stylizer-select", "value"),
                  Input("transfer-mode", "value"), State("stylizer-select", "value"))
    def switch(mode, value):  # noqa: ANN001, ANN202
        fast = mode == "fast"
        found, skipped = stylizers.find_stylizers(ctx)
        usable = usable_keys(found)
        shown = [HIDDEN if fast else {}] * 3 + [{} if fast else HIDDEN] + [{} if fast and usable else HIDDEN]
        chosen = value if value in usable else (usable[0] if usable else None)
        return (*shown, stylizers.options(found), stylizer_message(ctx, found, skipped),
                {} if usable else HIDDEN, chosen if chosen != value else dash.no_update)

    @app.callback(Output("stylizer-info", "children"), Input("stylizer-select", "value"))
    def info(value):  # noqa: ANN001, ANN202
        if not value:
            return ""
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
        if not value:                      # no stylizer: the empty state above says how to get one
            return None, ""
        try:
            key, status = fast_result(ctx, content, value, strength, size)
        except VisError as exc:
            return dash.no_update, f"⚠ {exc}"
        return cache_url(key), status

    jobs.register_download(app, ctx, "fast", "stylized")
