"""Texture tab: a texture image → Gatys texture synthesis as a background job (calls
:func:`vistoolbox.style.synthesize_texture`, the function ``vis texture`` uses)."""
from __future__ import annotations

from typing import Any, Callable

import dash
from dash import State, dcc, html

from vistoolbox import LoadedModel
from vistoolbox.style import DEFAULT_STYLE_LAYERS, synthesize_texture

from . import inputs, jobs
from .context import Context
from .live import layer_values, live_layers

__all__ = ["MAX_SIZE", "MAX_STEPS", "check", "layer_options", "layout", "register", "work"]

#: The page's limits, enforced on the server too (Texture and Transfer).
MAX_SIZE, MAX_STEPS = 1024, 5000


def layer_options(model: LoadedModel) -> tuple[list[dict[str, str]], list[str]]:
    """The Live tab's layer options and the library's default style layers (resolved) for this model."""
    options = live_layers(model)
    valid = {o["value"] for o in options}
    default: list[str] = []
    for name in DEFAULT_STYLE_LAYERS:
        try:
            default.append(model.resolve(name))
        except ValueError:
            pass
    default = [d for d in default if d in valid]
    return options, default or [o["value"] for o in options[:3]]


def layout(ctx: Context) -> html.Div:
    """The Texture tab."""
    options, default = layer_options(ctx.model)
    return html.Div(className="texture", children=[
        html.Div(className="row", children=[
            html.Div(className="col", children=[jobs.image_picker(ctx, "tex", "texture", value="sample:brick")]),
            html.Div(className="col wide", children=[
                html.Label(["size ", dcc.Input(id="tex-size", type="number", min=16, max=MAX_SIZE, step=1, value=128)]),
                html.Label(["steps ", dcc.Input(id="tex-steps", type="number", min=1, max=MAX_STEPS, step=1, value=100)]),
                html.Label(["seed ", dcc.Input(id="tex-seed", type="number", min=0, step=1, value=0)]),
                html.Label(["layers ", dcc.Dropdown(id="tex-layers", options=options, value=default, multi=True)]),
            ]),
        ]),
        jobs.job_panel("tex", "texture synthesis"),
    ])


def work(ctx: Context, params: dict[str, Any], report: Callable[[dict], None]):  # noqa: ANN201
    """Call the library: ``synthesize_texture`` on the chosen texture."""
    checked = check(ctx, params)
    images = jobs.images_of(ctx, params["images"], "texture")
    name = jobs.layer_names(ctx.model)      # the record and the loss legend say relu1_1, not features.1
    return synthesize_texture(ctx.model, images, size=checked["size"], steps=checked["steps"],
                              layers=[name(layer) for layer in checked["layers"]] or DEFAULT_STYLE_LAYERS,
                              seed=checked["seed"], snapshot_every=jobs.snapshot_every(checked["steps"]),
                              progress=report)


def check(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters within the page's limits (a forged request gets a one-line refusal)."""
    inputs.image_keys(params["images"])
    return {"size": inputs.count(params["size"], "size", 16, MAX_SIZE, 128),
            "steps": inputs.count(params["steps"], "steps", 1, MAX_STEPS, 100),
            "seed": inputs.count(params["seed"], "seed", 0, 2**31 - 1, 0),
            "layers": inputs.layers(ctx, params["layers"], "layers", layer_values(ctx))}


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager) -> None:
    """Wire the Texture tab."""
    jobs.register_picker(app, ctx, "tex")
    names = ["images", "size", "steps", "seed", "layers"]
    states = [State("tex-images", "data"), State("tex-size", "value"), State("tex-steps", "value"),
              State("tex-seed", "value"), State("tex-layers", "value")]
    jobs.register_job(app, ctx, manager, "tex", "texture", states, names, work, check)
