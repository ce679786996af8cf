"""Live tab, attribution overlay: the class-activation map (:func:`vistoolbox.cam`) of the Live image
for a method, a target (top, a class, a unit of a layer) and a layer, drawn over the image at an
opacity; a click on the overlay lists the units behind that place, each a link to the unit in Units."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx as cb, dcc, html

from vistoolbox import CamResult, cam
from vistoolbox.attribution.methods import METHODS
from vistoolbox.attribution.overlay import LEGEND_WIDTH, overlay
from vistoolbox.attribution.units import check_place, units_behind
from vistoolbox.errors import VisUsageError
from vistoolbox.images import png_bytes, to_pil, to_tensor

from . import inputs
from .context import Context
from .serving import data_uri
from .units import make_query
from .uploads import load_cached

__all__ = ["TARGETS", "cam_for", "cam_figure", "layout", "map_place", "register", "target_text", "unit_links"]

#: The kinds of target the overlay offers.
TARGETS = {"top": "top (class or strongest unit)", "class": "class N", "unit": "unit N of a layer"}
_CACHE: "OrderedDict[tuple, CamResult]" = OrderedDict()
_LOCK = threading.Lock()   # one map at a time through the shared model (its hooks are shared)


def target_text(kind: Any, index: Any, layer: Any, layers: list[str]) -> str:
    """The ``target`` of :func:`vistoolbox.cam` for the controls' values, checked (a forged value is a
    usage error naming the control)."""
    kind = inputs.one_of(kind, "target", TARGETS, "top")
    if kind == "top":
        return "top"
    number = inputs.count(index, "target number", 0, 1_000_000, 0)
    if kind == "class":
        return f"class:{number}"
    return f"unit:{inputs.one_of(layer, 'target layer', layers)}:{number}"


def cam_for(ctx: Context, key: str, layer: str, method: str, target: str) -> CamResult:
    """The map of cached image `key` (cropped to the model's input as Live shows it), memoised (8)."""
    memo = (key, layer, method, target, ctx.model_name, ctx.weights)
    with _LOCK:
        if memo in _CACHE:
            _CACHE.move_to_end(memo)
            return _CACHE[memo]
        model = ctx.model
        image = to_tensor(model.preprocessing.model_crop(load_cached(ctx, key)))
        result = cam(model, image, layer, target=target, method=inputs.one_of(method, "method", METHODS))
        _CACHE[memo] = result
        while len(_CACHE) > 8:
            _CACHE.popitem(last=False)
        return result


def cam_figure(ctx: Context, key: str, result: CamResult, opacity: float) -> go.Figure:
    """The overlay (:func:`~vistoolbox.attribution.overlay.overlay`, with its colour bar) as a plotly
    image; a click reports the pixel."""
    image = to_tensor(ctx.model.preprocessing.model_crop(load_cached(ctx, key)))[0]
    picture = overlay(image, result.upsampled[0], opacity)
    fig = go.Figure(go.Image(source=data_uri(png_bytes(to_pil(picture))),
                             hovertemplate="x %{x}, y %{y}<extra>click: the units behind</extra>"))
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), height=picture.shape[1] + 8,
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def map_place(result: CamResult, x: float, y: float) -> tuple[int, int]:
    """The (y, x) of the map under overlay pixel (x, y); the colour bar and outside are a usage error."""
    height, width = result.upsampled.shape[-2:]
    h, w = result.maps.shape[-2:]
    if not (0 <= x < width and 0 <= y < height):
        raise VisUsageError(f"the click ({x:.0f}, {y:.0f}) is not on the image ({width}x{height}); click the picture, "
                            f"not its colour bar ({LEGEND_WIDTH} px on the right)")
    return check_place((int(y * h / height), int(x * w / width)), (h, w))


def unit_links(ctx: Context, layer: str, behind: dict[str, Any]) -> tuple[list, list[str]]:
    """The list of units behind a place (unit, contribution), each a link to the unit in the Units
    tab when a run of this model mined `layer`; and the links' URL queries, in order."""
    runs = [(i, run) for i, run in enumerate(ctx.runs)
            if layer in run.layers and run.manifest.get("model") == ctx.model_name]
    rows, queries = [], []
    for row in behind["units"]:
        text = f"unit {row['unit']}: {row['contribution']:+.4g}"
        run_index, run = runs[0] if runs else (None, None)
        if run is not None and row["unit"] < run.units(layer):
            queries.append(make_query(run_index, run.short_name(layer), row["unit"], len(ctx.runs)))
            rows.append(html.Li(html.A(text, n_clicks=0, className="cam-unit", style={"cursor": "pointer"},
                                       id={"type": "cam-unit", "index": len(queries) - 1})))
        else:
            rows.append(html.Li(text))
    head = (f"map ({behind['y']}, {behind['x']}): {behind['pre_relu']:+.4g} before the ReLU, the sum of "
            f"every unit's contribution; the top {len(behind['units'])}:")
    note = [] if runs else [html.P("no run mined this layer with this model: no unit pages to link",
                                   className="status")]
    return [html.P(head), html.Ol(rows, id="cam-unit-list"), *note], queries


def layout(ctx: Context, layers: list[dict[str, str]], default: str | None) -> html.Div:
    """The overlay's controls and picture (under the Live tab's maps)."""
    return html.Div(className="live-cam", children=[
        html.H4("attribution (class-activation map)"),
        html.Div(className="pickers", children=[
            dcc.Checklist(id="cam-on", options=[{"label": " overlay", "value": "on"}], value=[], inline=True),
            dcc.Dropdown(id="cam-method", options=list(METHODS), value="gradcam", clearable=False,
                         style={"minWidth": "140px"}),
            dcc.Dropdown(id="cam-layer", options=layers, value=default, clearable=False,
                         style={"minWidth": "280px"}),
            dcc.Dropdown(id="cam-target", options=[{"label": t, "value": k} for k, t in TARGETS.items()],
                         value="top", clearable=False, style={"minWidth": "200px"}),
            html.Label(["N ", dcc.Input(id="cam-index", type="number", min=0, step=1, value=0, debounce=True)]),
            dcc.Dropdown(id="cam-target-layer", options=layers, value=layers[-1]["value"] if layers else None,
                         clearable=False, style={"minWidth": "280px"}),
            html.Label(["opacity ", dcc.Slider(id="cam-opacity", min=0, max=1, step=0.05, value=0.5,
                                               marks={0: "0", 0.5: "0.5", 1: "1"})], style={"minWidth": "220px"}),
        ]),
        html.Div(id="cam-message", className="message"),
        dcc.Store(id="cam-queries"),
        html.Div(className="row", children=[
            html.Div(className="col wide", children=[html.Div(id="cam-record", className="status"),
                                                     dcc.Graph(id="cam-overlay", config={"displayModeBar": False},
                                                               style={"display": "none"})]),
            html.Div(id="cam-units", className="col")]),
    ])


def register(app: dash.Dash, ctx: Context, checked: Any, layer_values: Any) -> None:
    """The overlay's callbacks; `checked` is the Live tab's check of an (image, layer) request and
    `layer_values` its set of layers (passed in: the Live tab imports this module for its layout)."""
    def request(image: Any, layer: Any, method: Any, kind: Any, index: Any, target_layer: Any) -> tuple:
        key, layer = checked(ctx, image, layer)
        target = target_text(kind, index, target_layer, sorted(layer_values(ctx)))
        return key, layer, cam_for(ctx, key, layer, method, target)

    controls = [State("live-image", "data"), State("cam-layer", "value"), State("cam-method", "value"),
                State("cam-target", "value"), State("cam-index", "value"), State("cam-target-layer", "value")]

    @app.callback(Output("cam-overlay", "figure"), Output("cam-overlay", "style"), Output("cam-record", "children"),
                  Output("cam-message", "children"), Output("cam-units", "children"),
                  Input("cam-on", "value"), Input("live-image", "data"), Input("cam-layer", "value"),
                  Input("cam-method", "value"), Input("cam-target", "value"), Input("cam-index", "value"),
                  Input("cam-target-layer", "value"), Input("cam-opacity", "value"), prevent_initial_call=True)
    def draw(on, image, layer, method, kind, index, target_layer, opacity):  # noqa: ANN001, ANN202
        if not on or not image:
            return dash.no_update, {"display": "none"}, "", "", []
        key, layer, result = request(image, layer, method, kind, index, target_layer)
        row = result.record["images"][0]
        record = (f"{result.record['method']} of {result.record['target_resolved']} (index {row['target_index']}, "
                  f"score {row['score']:.4g}) at {layer}: map {'x'.join(map(str, result.maps.shape[-2:]))}, "
                  f"peak {tuple(row['peak'])}, max {row['map_max']:.4g}; click the map for the units behind a place")
        figure = cam_figure(ctx, key, result, inputs.real(opacity, "opacity", 0, 1, 0.5))
        return figure, {"display": "block"}, record, "", []

    @app.callback(Output("cam-units", "children", allow_duplicate=True), Output("cam-queries", "data"),
                  Output("cam-message", "children", allow_duplicate=True),
                  Input("cam-overlay", "clickData"), *controls, prevent_initial_call=True)
    def behind(click, image, layer, method, kind, index, target_layer):  # noqa: ANN001, ANN202
        if not click or not image:
            raise dash.exceptions.PreventUpdate
        key, layer, result = request(image, layer, method, kind, index, target_layer)
        point = click["points"][0]
        place = map_place(result, float(point["x"]), float(point["y"]))
        listed, queries = unit_links(ctx, layer, units_behind(result.contributions[0], place))
        return listed, queries, ""

    @app.callback(Output("url", "search", allow_duplicate=True), Output("tabs", "value", allow_duplicate=True),
                  Input({"type": "cam-unit", "index": ALL}, "n_clicks"), State("cam-queries", "data"),
                  prevent_initial_call=True)
    def open_unit(clicks, queries):  # noqa: ANN001, ANN202
        picked = cb.triggered_id
        if not isinstance(picked, dict) or not any(clicks or []) or not isinstance(queries, list):
            raise dash.exceptions.PreventUpdate
        index = picked.get("index")
        if not isinstance(index, int) or not 0 <= index < len(queries) or not isinstance(queries[index], str):
            raise dash.exceptions.PreventUpdate
        return queries[index], "units"
