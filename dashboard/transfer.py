"""Transfer tab: content + one or more styles (blend weights), weights, colour preservation and size →
Gatys style transfer as a background job (calls :func:`vistoolbox.style.transfer_style`)."""
from __future__ import annotations

import math
from typing import Any, Callable

import dash
from dash import State, dcc, html

from vistoolbox.errors import VisUsageError

from . import jobs
from .context import Context
from .texture import style_api, unavailable


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
    if style_api() is None:
        return unavailable()
    from vistoolbox.style import transfer as defaults

    return html.Div(className="transfer", children=[
        html.Div(className="row", children=[
            html.Div(className="col", children=[jobs.image_picker(ctx, "tr-content", "content", value="sample:chelsea")]),
            html.Div(className="col", children=[jobs.image_picker(ctx, "tr-style", "styles", multiple=True,
                                                                  value="sample:immunohistochemistry")]),
            html.Div(className="col wide", children=[
                html.Label(["blend weights ", dcc.Input(id="tr-blend", type="text", placeholder="e.g. 0.7, 0.3")]),
                html.Label(["style weight (log10) ", dcc.Slider(id="tr-style-weight", min=-1, max=6, step=0.5,
                                                                value=math.log10(defaults.DEFAULT_STYLE_WEIGHT))]),
                html.Label(["content weight ", dcc.Input(id="tr-content-weight", type="number", min=0,
                                                         value=defaults.DEFAULT_CONTENT_WEIGHT)]),
                html.Label(["colours ", dcc.Dropdown(id="tr-preserve", value="none", clearable=False,
                                                     options=["none", "luminance", "histogram"])]),
                html.Label(["size ", dcc.Input(id="tr-size", type="number", min=16, max=1024, step=1, value=192)]),
                html.Label(["steps ", dcc.Input(id="tr-steps", type="number", min=1, max=5000, step=1, value=100)]),
            ]),
        ]),
        jobs.job_panel("tr", "style transfer"),
    ])


def work(ctx: Context, params: dict[str, Any], report: Callable[[dict], None]):  # noqa: ANN201
    """Call the library: ``transfer_style`` with the chosen content and styles."""
    style = style_api()
    content = jobs.images_of(ctx, params["content"], "content")[0]
    styles = jobs.images_of(ctx, params["styles"], "style")
    steps = int(params["steps"] or 100)
    from vistoolbox.style import transfer as defaults

    log_style = params["style_weight"]
    style_weight = defaults.DEFAULT_STYLE_WEIGHT if log_style is None else 10 ** float(log_style)
    content_weight = defaults.DEFAULT_CONTENT_WEIGHT if params["content_weight"] is None else float(params["content_weight"])
    return style.transfer_style(ctx.model, content, styles, style_blend=parse_blend(params["blend"], len(styles)),
                                style_weight=style_weight, content_weight=content_weight,
                                preserve_colors=params["preserve"] or "none", size=int(params["size"] or 192),
                                steps=steps, snapshot_every=max(1, steps // 10), progress=report)


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager) -> None:
    if style_api() is None:
        return
    jobs.register_picker(app, ctx, "tr-content")
    jobs.register_picker(app, ctx, "tr-style", multiple=True)
    names = ["content", "styles", "blend", "style_weight", "content_weight", "preserve", "size", "steps"]
    states = [State("tr-content-images", "data"), State("tr-style-images", "data"), State("tr-blend", "value"),
              State("tr-style-weight", "value"), State("tr-content-weight", "value"), State("tr-preserve", "value"),
              State("tr-size", "value"), State("tr-steps", "value")]
    jobs.register_job(app, ctx, manager, "tr", "transfer", states, names, work)
