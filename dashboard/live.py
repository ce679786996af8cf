"""Live tab: an uploaded (or run) image through the model → every channel of a layer as a tiled map;
a channel → its map over the image and its top-9 from the run; the top-5 classes if any."""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
import torch
from dash import Input, Output, Patch, State, ctx as cb, dcc, html
from PIL import Image
from torch import nn

from vistoolbox import FeatureExtractor, LoadedModel, layer_table
from vistoolbox.errors import VisError, VisUsageError
from vistoolbox.features.views import MODES, unit_view_patches
from vistoolbox.images import open_image, png_bytes, to_tensor
from vistoolbox.models import top_classes
from vistoolbox.rundir import short_name

from . import inputs, live_cam
from .context import Context
from .serving import data_uri, run_url
from .units import make_query
from .uploads import cache_image, load_cached, store_upload

__all__ = ["SCALES", "activations", "channel_at", "channel_views", "checked", "clamp_channel", "classes_panel", "clicked_channel",
           "layer_name", "layer_values", "layout", "live_layers", "maps_figure", "montage_png", "overlay_png", "register", "run_top9",
           "selection_outline", "store_run_image", "tile_layout"]

MIN_TILE, MAX_TILE = 24, 64   # px per channel tile in the montage
PAD = 2
_FORWARD = threading.Lock()   # one forward pass at a time through the shared model (hooks are shared)
_CACHE: "OrderedDict[tuple, dict]" = OrderedDict()
_COMPUTING: dict[tuple, threading.Event] = {}   # (image, layer, model) being computed now → set when done
_MEMO = threading.Lock()                         # guards _CACHE and _COMPUTING
_LAYERS: dict[tuple, set[str]] = {}


# --------------------------------------------------------------------------- library calls

def live_layers(model: LoadedModel) -> list[dict[str, str]]:
    """Dropdown options: every conv/ReLU/pool layer with a channels-first map and every layer with a
    channels-last or token layout (Swin, ViT), labelled with aliases, shape and layout."""
    wanted = (nn.Conv2d, nn.ReLU, nn.MaxPool2d)
    modules = dict(model.module.named_modules())
    options = []
    for row in layer_table(model):
        if row.layout is None or row.layout == "C" or row.shape is None:
            continue
        if row.layout == "CHW" and not isinstance(modules[row.name], wanted):
            continue
        label = f"{', '.join(row.aliases)} · {row.name}" if row.aliases else row.name
        shape = "×".join(map(str, row.shape))
        options.append({"label": f"{label} · {shape}" + ("" if row.layout == "CHW" else f" · {row.layout}"),
                        "value": row.name})
    return options


def activations(ctx: Context, key: str, layer: str) -> dict[str, Any]:
    """``{"maps": [C, h, w] float32, "image": PIL, "classes": [(name, p)]}`` for a cached image
    (memoised); the maps are channels first whatever the layer's layout (a token grid without its
    class token).

    Requests for the same (image, layer) that arrive while it is being computed wait for that one
    computation instead of repeating it (20 browsers opening a new layer cost one forward pass)."""
    cache_key = (key, layer, ctx.model_name, ctx.weights)
    while True:
        with _MEMO:
            if cache_key in _CACHE:
                _CACHE.move_to_end(cache_key)
                return _CACHE[cache_key]
            done = _COMPUTING.get(cache_key)
            mine = done is None
            if mine:
                done = _COMPUTING[cache_key] = threading.Event()
        if mine:
            break
        done.wait()  # then take the result from the memo (or, if that computation failed, try ourselves)
    try:
        result = _compute(ctx, key, layer)
        with _MEMO:
            _CACHE[cache_key] = result
            while len(_CACHE) > 16:
                _CACHE.popitem(last=False)
        return result
    finally:
        with _MEMO:
            _COMPUTING.pop(cache_key, None)
        done.set()


def _compute(ctx: Context, key: str, layer: str) -> dict[str, Any]:
    model = ctx.model
    image = model.preprocessing.model_crop(load_cached(ctx, key))
    x = model.preprocessing.normalize(to_tensor(image)).to(model.device)
    with _FORWARD, torch.no_grad(), FeatureExtractor(model, [layer], channels_first=True) as fx:
        maps = fx(x)[layer][0].float().cpu().numpy()
        classes = top_classes(model, x) if model.has_classifier else []
    return {"maps": maps, "image": image, "classes": classes}


def channel_views(ctx: Context, key: str, layer: str, channel: int) -> dict[str, bytes]:
    """Deconv / backprop / guided views (PNG) of the channel's strongest position in this image, cut
    to its receptive field with the contrast set over the field, as the Units tab shows them
    (:func:`vistoolbox.features.views.unit_view_patches`)."""
    result = activations(ctx, key, layer)
    y, x = np.unravel_index(int(np.argmax(result["maps"][channel])), result["maps"][channel].shape)
    with _FORWARD:
        views = unit_view_patches(ctx.model, to_tensor(result["image"]).to(ctx.model.device), layer, channel,
                                  int(y), int(x), MODES)
    return {mode: png_bytes(view) for mode, view in views.items()}


# --------------------------------------------------------------------------- pictures

def tile_layout(channels: int, height: int, width: int) -> dict[str, int]:
    """Montage geometry: tile size (≤ MAX_TILE), columns and rows."""
    tile = max(MIN_TILE, min(MAX_TILE, max(height, width)))
    ncols = math.ceil(math.sqrt(channels))
    return {"tile": tile, "pad": PAD, "ncols": ncols, "nrows": math.ceil(channels / ncols), "channels": channels}


def channel_at(meta: dict[str, int], x: float, y: float) -> int | None:
    """The channel under montage pixel (x, y), or None in a gutter/outside."""
    step = meta["tile"] + meta["pad"]
    col, row = int(x) // step, int(y) // step
    if int(x) % step >= meta["tile"] or int(y) % step >= meta["tile"] or col >= meta["ncols"]:
        return None
    channel = row * meta["ncols"] + col
    return channel if 0 <= channel < meta["channels"] else None


#: How the Live tiles are scaled: each channel to its own maximum, or all by one scale per layer.
SCALES = {"channel": "each channel to its own max", "layer": "one scale for the layer"}


def montage_png(maps: np.ndarray, meta: dict[str, int], scale: str = "channel") -> bytes:
    """Grey-scale montage of ReLU'd maps. ``scale="channel"``: each tile from 0 to its own maximum, so
    every channel's pattern is readable (a channel that is never positive stays black);
    ``"layer"``: all tiles by the layer's 99.5th percentile, so channels stay comparable."""
    positive = np.maximum(maps, 0)
    if scale == "layer":
        scales = np.full(len(positive), float(np.percentile(positive, 99.5)) or float(positive.max()) or 1.0)
    else:
        scales = positive.reshape(len(positive), -1).max(1)
        scales[scales <= 0] = 1.0
    tile, pad, ncols = meta["tile"], meta["pad"], meta["ncols"]
    canvas = np.full((meta["nrows"] * (tile + pad) - pad, ncols * (tile + pad) - pad), 60, np.uint8)
    for c, channel in enumerate(positive):
        img = Image.fromarray((channel / scales[c] * 255).clip(0, 255).astype(np.uint8))
        img = img.resize((tile, tile), Image.Resampling.NEAREST)
        r, col = divmod(c, ncols)
        canvas[r * (tile + pad): r * (tile + pad) + tile, col * (tile + pad): col * (tile + pad) + tile] = np.asarray(img)
    return png_bytes(Image.fromarray(canvas).convert("RGB"))


def overlay_png(image: Image.Image, channel_map: np.ndarray) -> bytes:
    """The map (ReLU'd, upsampled bilinearly, scaled to its max) as a red-yellow heat over the image."""
    heat = np.maximum(channel_map, 0)
    heat = heat / (heat.max() or 1.0)
    heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR),
                      np.float32) / 255.0
    base = np.asarray(image.convert("RGB"), np.float32) / 255.0 * 0.45
    color = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1)
    out = base * (1 - heat[..., None]) + color * heat[..., None]
    return png_bytes(Image.fromarray((out * 255).clip(0, 255).astype(np.uint8)))


def maps_figure(png: bytes, meta: dict[str, int], maxima: np.ndarray, selected: int | None = None) -> go.Figure:
    """A plotly image of the montage with an invisible grid of one cell per tile on top: hovering a
    tile shows its channel and maximum, a click reports the channel (``customdata``); the
    `selected` channel's tile is outlined."""
    fig = go.Figure(go.Image(source=data_uri(png), hoverinfo="skip"))
    step, tile = meta["tile"] + meta["pad"], meta["tile"]
    nrows, ncols = meta["nrows"], meta["ncols"]
    channel = np.arange(nrows * ncols).reshape(nrows, ncols)
    exists = channel < meta["channels"]
    peak = np.full(channel.shape, np.nan)
    peak[exists] = np.asarray(maxima, float)[channel[exists]]
    custom = np.stack([np.where(exists, channel, -1), np.nan_to_num(peak)], axis=-1)
    fig.add_trace(go.Heatmap(
        z=np.where(exists, 0.0, np.nan), x=np.arange(ncols) * step + (tile - 1) / 2,
        y=np.arange(nrows) * step + (tile - 1) / 2, customdata=custom, opacity=0, showscale=False,
        hoverongaps=False, colorscale=[[0, "black"], [1, "black"]],
        hovertemplate="channel %{customdata[0]}<br>max %{customdata[1]:.4g}<extra></extra>"))
    width = ncols * step
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), height=min(900, max(300, width)),
                      xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"),
                      shapes=selection_outline(meta, selected))
    return fig


def selection_outline(meta: dict[str, int], channel: int | None) -> list[dict]:
    """The rectangle (plotly layout shape) around a channel's tile; none for None."""
    if channel is None or not 0 <= channel < meta["channels"]:
        return []
    step = meta["tile"] + meta["pad"]
    row, col = divmod(channel, meta["ncols"])
    return [dict(type="rect", xref="x", yref="y", x0=col * step - 1.5, y0=row * step - 1.5,
                 x1=col * step + meta["tile"] + 0.5, y1=row * step + meta["tile"] + 0.5,
                 line=dict(color="#e4572e", width=3))]


def clicked_channel(meta: dict[str, int], point: dict) -> int | None:
    """The channel a click on the maps figure chose (the tile grid's customdata, else the pixel)."""
    custom = point.get("customdata")
    if isinstance(custom, (list, tuple)) and custom and custom[0] is not None and int(custom[0]) >= 0:
        return int(custom[0])
    return channel_at(meta, point["x"], point["y"])


# --------------------------------------------------------------------------- layout + callbacks

def layout(ctx: Context) -> html.Div:
    options = live_layers(ctx.model)
    default = next((o["value"] for o in options if ctx.runs and o["value"] in ctx.runs[0].layers), None)
    default = default or (options[len(options) // 2]["value"] if options else None)
    picks = []
    for i, run in enumerate(ctx.runs):   # only runs whose images may be read (see Run.dataset_problem)
        picks += [{"label": f"run {i}: {name}", "value": f"{i}:{j}"}
                  for j, name in enumerate(run.images[:200] if not run.dataset_problem else [])]
    return html.Div(className="live", children=[
        html.Div(className="pickers", children=[
            dcc.Upload(id="live-upload", className="upload", max_size=ctx.max_upload_bytes, accept="image/*",
                       children=html.Div(["drop an image or ", html.A("choose a file"),
                                          f" (≤ {ctx.max_upload_bytes // 2**20} MiB)"])),
            dcc.Dropdown(id="live-pick", options=picks, placeholder="…or pick a run image",
                         style={"minWidth": "260px"}),
            dcc.Dropdown(id="live-layer", options=options, value=default, clearable=False,
                         style={"minWidth": "320px"}),
            html.Label(["channel ", dcc.Input(id="live-channel", type="number", min=0, step=1, value=0,
                                              debounce=True)]),
            html.Span(id="live-channel-message", className="message"),
        ]),
        html.Div(id="live-message", className="message"),
        dcc.Store(id="live-image"), dcc.Store(id="live-meta"),
        html.Div(className="row", children=[
            html.Div(className="col", children=[html.H4("input"), html.Img(id="live-input", className="live-input"),
                                                html.Div(id="live-classes", children=classes_panel(ctx.model, None))]),
            html.Div(id="live-maps-col", className="col wide", children=[
                html.H4("activations (hover: channel and max; click a channel)"),
                dcc.RadioItems(id="live-scale", options=[{"label": text, "value": key} for key, text in SCALES.items()],
                               value="channel", inline=True, className="live-scale"),
                html.Div("updating…", className="updating"),
                dcc.Graph(id="live-maps", config={"displayModeBar": False})]),
            html.Div(id="live-channel-col", className="col", children=[
                html.H4(id="live-channel-title"), html.Div("updating…", className="updating"),
                html.Img(id="live-overlay", className="live-input"),
                html.Div(id="live-views", className="live-views"), html.Div(id="live-top9")]),
        ]),
        live_cam.layout(ctx, options, default),
    ])


def register(app: dash.Dash, ctx: Context) -> None:
    @app.callback(Output("live-image", "data"), Output("live-message", "children"), Output("live-pick", "value"),
                  Input("live-upload", "contents"), Input("live-pick", "value"), prevent_initial_call=True)
    def choose(contents, pick):  # noqa: ANN001, ANN202
        try:
            if cb.triggered_id == "live-upload":
                key, _ = store_upload(ctx, contents)
                return {"key": key}, "", None        # the run-image picker no longer names what is shown
            if pick is None:
                raise dash.exceptions.PreventUpdate
            run, index = (int(v) for v in str(pick).split(":"))
            key, _ = store_run_image(ctx, run, index)
        except (VisError, ValueError, IndexError) as exc:
            return dash.no_update, f"⚠ {exc}", dash.no_update
        return {"key": key}, "", dash.no_update

    @app.callback(Output("live-maps", "figure"), Output("live-meta", "data"), Output("live-input", "src"),
                  Output("live-classes", "children"), Output("live-message", "children", allow_duplicate=True),
                  Output("live-maps-col", "className", allow_duplicate=True),
                  Output("live-channel-col", "className", allow_duplicate=True),
                  Input("live-image", "data"), Input("live-layer", "value"), Input("live-scale", "value"),
                  State("live-channel", "value"), prevent_initial_call=True)
    def maps(image, layer, scale, selected):  # noqa: ANN001, ANN202
        if not image or not layer:
            raise dash.exceptions.PreventUpdate
        try:
            key, layer = checked(ctx, image, layer)
            scale = inputs.one_of(scale, "scale", SCALES, "channel")
            result = activations(ctx, key, layer)
        except VisError as exc:
            return dash.no_update, dash.no_update, dash.no_update, dash.no_update, f"⚠ {exc}", "col wide", "col"
        meta = tile_layout(*result["maps"].shape)
        maxima = result["maps"].reshape(len(result["maps"]), -1).max(1)
        chosen, _ = clamp_channel(selected, meta["channels"], layer)
        figure = maps_figure(montage_png(result["maps"], meta, scale), meta, maxima, chosen)
        return (figure, meta, data_uri(png_bytes(result["image"])),
                classes_panel(ctx.model, result["classes"]), "", "col wide", dash.no_update)  # channel: see below

    # the moment another image or layer is chosen, the pictures computed for the old one are marked
    # "updating…" (dimmed) until their callbacks answer
    app.clientside_callback(
        "function(image, layer) { return ['col wide stale', 'col stale']; }",
        Output("live-maps-col", "className"), Output("live-channel-col", "className"),
        Input("live-image", "data"), Input("live-layer", "value"), prevent_initial_call=True)

    @app.callback(Output("live-channel", "value"), Input("live-maps", "clickData"), State("live-meta", "data"),
                  prevent_initial_call=True)
    def click(data, meta):  # noqa: ANN001, ANN202
        if not data or not meta:
            raise dash.exceptions.PreventUpdate
        try:  # both come from the browser; the channel is checked against the layer afterwards
            channel = clicked_channel(meta, data["points"][0])
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            raise dash.exceptions.PreventUpdate from None
        if channel is None:
            raise dash.exceptions.PreventUpdate
        return channel

    @app.callback(Output("live-overlay", "src"), Output("live-channel-title", "children"),
                  Output("live-top9", "children"), Output("live-views", "children"),
                  Output("live-channel", "value", allow_duplicate=True), Output("live-channel-message", "children"),
                  Output("live-channel-col", "className", allow_duplicate=True),
                  Output("live-maps", "figure", allow_duplicate=True),
                  Input("live-channel", "value"), Input("live-meta", "data"),
                  State("live-image", "data"), State("live-layer", "value"), prevent_initial_call=True)
    def channel(value, meta, image, layer):  # noqa: ANN001, ANN202
        if not image or not meta or value is None:
            raise dash.exceptions.PreventUpdate
        try:
            key, layer = checked(ctx, image, layer)
            result = activations(ctx, key, layer)
        except VisError:
            raise dash.exceptions.PreventUpdate from None
        # the number of channels comes from the maps, never from the browser's `meta`
        ch, message = clamp_channel(value, result["maps"].shape[0], layer_name(ctx.model, layer))
        views = [html.Figure(className="view", children=[html.Img(src=data_uri(png), id=f"live-view-{mode}"),
                                                         html.Figcaption(mode)])
                 for mode, png in channel_views(ctx, key, layer, ch).items()]
        outline = Patch()
        outline["layout"]["shapes"] = selection_outline(tile_layout(*result["maps"].shape), ch)   # not the browser's meta
        return (data_uri(overlay_png(result["image"], result["maps"][ch])), f"channel {ch}",
                run_top9(ctx, layer, ch), views, ch if ch != value else dash.no_update, message, "col", outline)


def layer_values(ctx: Context) -> set[str]:
    """The layers the Live tab offers (its dropdown's values), computed once per model."""
    key = (ctx.model_name, ctx.weights, ctx.input_size)
    if key not in _LAYERS:
        _LAYERS[key] = {option["value"] for option in live_layers(ctx.model)}
    return _LAYERS[key]


def checked(ctx: Context, image: Any, layer: Any) -> tuple[str, str]:
    """The cached-image key and the layer of a request, checked: the key must be one this dashboard
    stored and the layer one of the dropdown's (a forged name, number or list is a usage error)."""
    key = inputs.image_keys({"keys": [image.get("key")]} if isinstance(image, dict) else None)
    if not key:
        raise VisUsageError("choose an image first")
    return key[0], inputs.one_of(layer, "layer", sorted(layer_values(ctx)))


def clamp_channel(value: Any, channels: int, layer: str) -> tuple[int, str]:
    """The channel to show for what was typed, and a message when it is not one of the layer's."""
    try:
        asked = int(value)
    except (TypeError, ValueError):
        return 0, f"⚠ {value!r} is not a channel number; showing channel 0"
    ch = max(0, min(asked, channels - 1))
    if ch == asked:
        return ch, ""
    return ch, f"⚠ {layer} has no channel {asked} (its {channels} channels are 0–{channels - 1}); showing channel {ch}"


def layer_name(model: LoadedModel, layer: str) -> str:
    return short_name(layer, model.aliases_of(layer))


def classes_panel(model: LoadedModel, classes: list[tuple[str, float]] | None) -> list:
    """The top-5 classes, or why there are none: a model without a classifier says so."""
    if not model.has_classifier:
        return [html.H4("top-5 classes"),
                html.P(f"{model.name} / {model.weights} has no classifier (its weights hold conv layers only), "
                       "so there are no class scores; load a model with one (e.g. --weights imagenet) to see "
                       "them here.", className="status", id="live-no-classifier")]
    if not classes:
        return []
    return [html.H4("top-5 classes"), html.Ol([html.Li(f"{name} ({p:.1%})") for name, p in classes])]


def store_run_image(ctx: Context, run_index: int, index: int) -> tuple[str, str]:
    """Cache dataset image `index` of a run like an upload → ``(key, url)``."""
    return cache_image(ctx, open_image(ctx.runs[run_index].image_path(index)))


def run_top9(ctx: Context, layer: str, channel: int) -> list:
    """The channel's top-9 montage from the first run that mined `layer` with the same model."""
    for i, run in enumerate(ctx.runs):
        if layer in run.layers and run.manifest.get("model") == ctx.model_name and channel < run.units(layer):
            montage = run.patch(layer, channel)
            children: list = [html.H4(f"top-9 in run {i}")]
            if montage.is_file():
                children.append(html.Img(src=run_url(ctx, i, montage), className="live-input pixelated",
                                         id="live-top9-img"))
            children.append(html.Br())
            children.append(html.Button("open in Units", id="live-open-unit", n_clicks=0))
            children.append(dcc.Store(id="live-open-query", data=make_query(i, run.short_name(layer), channel, len(ctx.runs))))
            return children
    return [html.P("no run mined this layer with this model", className="status")] if ctx.runs else []
