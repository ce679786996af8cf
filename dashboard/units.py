"""Units tab: layer picker, a grid of every unit, and a unit's detail (top-9, views, histogram,
optimised image). The selection lives in the URL (``?run=<i>&layer=<name>&unit=<n>``)."""
from __future__ import annotations

import math
import time
import urllib.parse
from pathlib import Path
from typing import Any

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx as cb, dcc, html
from PIL import Image, ImageDraw

from vistoolbox.errors import VisError
from vistoolbox.export import export_command
from vistoolbox.features.views import MODES
from vistoolbox.files import write_bytes
from vistoolbox.images import fit_longest, open_image, png_bytes
from vistoolbox.mining import render_unit_views
from vistoolbox.mining.gallery import (GRID_COLUMNS, GRID_SHOWS, THUMB, count_maximized, histogram_bins, image_part,
                                       source_hit, sprite_image, thumbnails)
from vistoolbox.rundir import Run, unit_stem

from . import accent, inputs, optimise
from .jobs import in_job_process, queued_text
from .context import Context, content_key
from .serving import cache_url, run_url

__all__ = ["GRID_COLUMNS", "THUMB", "checked_selection", "histogram_figure", "layer_label", "layer_summary", "layout", "make_query",
           "parse_query", "register", "resolve_selection", "select_from_trigger", "selection_problems",
           "draw_marker", "CELL_COLOUR", "FIELD_COLOUR", "marker_size", "MARKER_COLOUR", "source_with_box", "sprite", "step_unit", "unit_detail", "unit_grid", "url_layer"]


# --------------------------------------------------------------------------- pure helpers

def parse_query(search: str | None) -> dict[str, str]:
    """``?layer=conv1&unit=3`` → ``{"layer": "conv1", "unit": "3"}`` (last value wins)."""
    query = urllib.parse.parse_qs((search or "").lstrip("?"))
    return {key: values[-1] for key, values in query.items() if values}


def make_query(run: int, layer: str, unit: int, n_runs: int) -> str:
    """The URL query of a selection (``run`` only when several runs are open)."""
    parts = ([("run", run)] if n_runs > 1 else []) + [("layer", layer), ("unit", unit)]
    return "?" + urllib.parse.urlencode(parts)


def resolve_selection(ctx: Context, query: dict[str, str]) -> dict[str, Any] | None:
    """A valid ``{"run", "layer", "unit"}`` from a URL query, falling back to the first of each."""
    if not ctx.runs:
        return None
    try:
        run_index = int(query.get("run", 0))
    except ValueError:
        run_index = 0
    run = ctx.run(run_index) or ctx.runs[0]
    run_index = ctx.runs.index(run)
    layer = run.layers[0]
    if query.get("layer"):
        try:
            layer = run.resolve(query["layer"])
        except ValueError:
            pass
    try:
        unit = int(query.get("unit", 0))
    except ValueError:
        unit = 0
    return {"run": run_index, "layer": layer, "unit": clamp(unit, run.units(layer))}


def url_layer(run: Run, layer: str, typed: str | None) -> str:
    """The layer's name in the address bar: what the user typed when it names this layer (``conv4``
    stays ``conv4``), else its first alias (``conv4``, not ``features.21``)."""
    if typed:
        try:
            if run.resolve(typed) == layer:
                return typed
        except ValueError:
            pass
    return run.short_name(layer)


def selection_problems(ctx: Context, query: dict[str, str], sel: dict[str, Any]) -> str:
    """What a deep link asked for that does not exist, and what is shown instead ("" when all is fine)."""
    run = ctx.runs[sel["run"]]
    problems: list[str] = []
    if "run" in query and str(query["run"]) != str(sel["run"]):
        problems.append(f"there is no run {query['run']!r} (runs 0–{len(ctx.runs) - 1})")
    typed = query.get("layer")
    if typed:
        try:
            run.resolve(typed)
        except ValueError:
            names = ", ".join(f"{run.short_name(n)} ({n})" if run.aliases(n) else n for n in run.layers)
            problems.append(f"unknown layer {typed!r}; this run has {names}")
    try:
        asked = int(query["unit"]) if "unit" in query else sel["unit"]
    except ValueError:
        asked = None
    if asked != sel["unit"]:
        units = run.units(sel["layer"])
        problems.append(f"there is no unit {query['unit']!r} in {run.short_name(sel['layer'])} (units 0–{units - 1})")
    if not problems:
        return ""
    return "⚠ " + "; ".join(problems) + f" — showing {run.short_name(sel['layer'])} unit {sel['unit']}"


def clamp(unit: int, units: int) -> int:
    return max(0, min(int(unit), units - 1))


def step_unit(unit: int, key: str, units: int, columns: int = GRID_COLUMNS) -> int:
    """The unit an arrow key moves to in a grid of `columns` columns (clamped to the layer)."""
    delta = {"ArrowLeft": -1, "ArrowRight": 1, "ArrowUp": -columns, "ArrowDown": columns}.get(key, 0)
    return clamp(unit + delta, units)


def layer_label(run: Run, layer: str) -> str:
    """``conv1 · features.0 · 64×55×55 · RF 11 / stride 4`` (a bound: ``RF ≤ 52``; ``RF whole
    image``; the layout when it is not channels-first: ``… · 56×56×96 · HWC · …``)."""
    info = run.layer_info(layer)
    bits = [", ".join(run.aliases(layer)) or layer]
    if run.aliases(layer):
        bits.append(layer)
    if info.get("shape"):
        bits.append("×".join(map(str, info["shape"])))
    if info.get("layout") not in (None, "CHW", "C"):
        bits.append(str(info["layout"]))
    pair = lambda v: str(v[0]) if isinstance(v, (list, tuple)) and v[0] == v[1] else str(v)  # noqa: E731
    if info.get("rf_size"):
        size, stride = info["rf_size"], info.get("rf_stride") or "?"
        bits.append(f"RF {'≤ ' if info.get('rf') == 'bound' else ''}{pair(size)} / stride {pair(stride)}")
    elif info.get("rf") == "global" and info.get("layout") != "C":
        bits.append("RF whole image")
    elif info.get("rf") == "unknown":
        bits.append("RF unknown")
    return " · ".join(bits)


def layer_summary(run: Run, layer: str) -> str:
    """``256 units · top-9 over 12 images`` (`` · 4 optimised`` when the run has optimised images)."""
    counts = run.manifest.get("counts", {})
    images = counts.get("seen", counts.get("images", len(run.images)))
    made = count_maximized(run, layer)
    return (f"{run.units(layer)} units · top-{run.manifest.get('k', 9)} over {images} images"
            + (f" · {made} optimised" if made else ""))


def histogram_figure(run: Run, layer: str, unit: int) -> go.Figure:
    """Bar chart of the unit's activation histogram from ``stats.npz``."""
    fig = go.Figure()
    try:
        hist = histogram_bins(run, layer, unit)
    except OSError:
        return fig
    # the run's edges are symmetric-log (half octaves): one bar per bin, labelled by its range
    fig.add_bar(x=hist.labels, y=hist.counts, marker_color="#4c78a8")
    title = "activation histogram"
    if hist.mean_max is not None:
        title += f" · mean max {hist.mean_max:.3g}"
    if hist.frac_active is not None:
        title += f" · active {100 * hist.frac_active:.1f}%"
    fig.update_layout(title=title, height=260, margin=dict(l=40, r=10, t=40, b=30), bargap=0,
                      xaxis_title="spatial max of the unit (bin)", yaxis_title="images")
    return fig


SOURCE_LONGEST = 512   # px, longest side of the source view


def source_with_box(ctx: Context, run_index: int, layer: str, unit: int, rank: int) -> Path:
    """PNG (cached) of the full dataset image behind top-k entry `rank` of `unit` (longest side
    ≤ SOURCE_LONGEST) with the unit's receptive-field box drawn, mapped back through the miner's
    resize + centre crop; the dashed rectangle is the crop the model saw. Where the field is wider
    than exact (a bound, the whole image), the unit's own cell of the position grid is outlined in
    blue (a ViT token's patch)."""
    run = ctx.runs[run_index]
    layer = run.resolve(layer)
    topk = run.topk(layer)
    if not (0 <= unit < topk["values"].shape[0] and 0 <= rank < topk["values"].shape[1]):
        raise LookupError("no such unit or rank")
    key = content_key(run.root, layer, unit, rank, (run.root / "manifest.json").stat().st_mtime_ns)
    out = ctx.jobs_dir / f"{key}.png"
    if out.is_file():
        return out
    index = int(topk["image_index"][unit, rank])
    if index < 0:
        raise LookupError("empty top-k slot")
    original = open_image(run.image_path(index))
    hit = source_hit(run, layer, int(topk["y"][unit, rank]), int(topk["x"][unit, rank]), original.size)
    shown = original.resize(fit_longest(original.size, SOURCE_LONGEST, shrink_only=True), Image.Resampling.BILINEAR)
    sx, sy = shown.width / original.width, shown.height / original.height

    def to_shown(rect: tuple[float, float, float, float]) -> list[int]:
        left, top, right, bottom = rect
        return [round(left * sx), round(top * sy), round(right * sx) - 1, round(bottom * sy) - 1]

    draw = ImageDraw.Draw(shown)
    draw.rectangle(to_shown(hit.crop), outline=(255, 255, 255), width=1)
    if hit.field is not None:
        box = to_shown(hit.field)
        small = min(box[2] - box[0], box[3] - box[1]) + 1 < marker_size(shown.size)
        draw.rectangle(box, outline=FIELD_COLOUR, width=1 if small else 2)
        if small:
            draw_marker(draw, box, marker_size(shown.size))
    if hit.cell is not None:  # the winning position itself, where the field is wider than exact
        draw.rectangle(to_shown(hit.cell), outline=CELL_COLOUR, width=2)
    write_bytes(out, png_bytes(shown))
    return out


FIELD_COLOUR = (255, 40, 40)
MARKER_COLOUR = (255, 210, 0)
CELL_COLOUR = (0, 190, 255)
HALO_COLOUR = (0, 0, 0)


def marker_size(size: tuple[int, int]) -> int:
    """Boxes narrower than this (px; 1/16 of the picture's longest side, at least 10) get a marker."""
    return max(10, round(max(size) / 16))


def draw_marker(draw: ImageDraw.ImageDraw, box: list[int], size: int) -> None:
    """Four arms pointing at a small box (left, top, right, bottom, inclusive) from a gap around it,
    so a 3-px receptive field is found at a glance and the box itself stays exact."""
    gap, arm, width = max(2, size // 4), size, max(1, size // 5)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top, right, bottom = box[0] - gap, box[1] - gap, box[2] + gap, box[3] + gap
    arms = [((left - arm, cy), (left, cy)), ((right, cy), (right + arm, cy)),
            ((cx, top - arm), (cx, top)), ((cx, bottom), (cx, bottom + arm))]
    for colour, extra in ((HALO_COLOUR, 2), (MARKER_COLOUR, 0)):   # a dark halo: visible on light and dark
        for start, end in arms:
            draw.line([start, end], fill=colour, width=width + extra)


# --------------------------------------------------------------------------- layout

def layout(ctx: Context) -> html.Div:
    """The Units tab (static skeleton; callbacks fill it)."""
    if not ctx.runs:
        return html.Div(className="empty", children=[
            html.H3("No run open"),
            html.P(["Mine the top-9 patches of a model's units with ", html.Code("vis mine --dataset FOLDER --out RUN"),
                    ", then start ", html.Code("vis dashboard --run RUN"), ". Live, Texture and Transfer work without a run."]),
            dcc.Dropdown(id="layer-select", options=[], style={"display": "none"}),
            html.Div(id="unit-grid"), html.Div(id="unit-detail")])
    run_options = [{"label": f"{i}: {r.root.name} ({r.manifest.get('model', '?')})", "value": i}
                   for i, r in enumerate(ctx.runs)]
    top9 = html.Div(id="top9", className="top9", children=[
        html.Figure(className="top9-cell", children=[
            html.Div(className="top9-frame", children=[
                html.Img(id={"type": "top9-img", "rank": r}, className="top9-img", alt=f"rank {r}"),
                html.Div(id={"type": "top9-inside", "rank": r}, className="top9-inside", style={"display": "none"},
                         title="the image; outside it the network saw its zero padding (the mean colour)")]),
            html.Figcaption(id={"type": "top9-value", "rank": r}), accent.button(r)]) for r in range(9)])
    detail = html.Div(id="unit-detail", className="unit-detail", children=[
        html.H3(id="detail-title"),
        top9,
        html.Div(id="unit-views", className="views"),
        html.Div(className="pickers", children=[
            html.Span(id="views-status", className="status"),
            html.Progress(id="views-progress", style={"display": "none"}),   # indeterminate while running
            dcc.Store(id="views-request")]),
        html.Div(className="row", children=[
            html.Div(className="col", children=[html.H4("source (click a patch)"),
                                                html.Img(id="source-view", className="source-view")]),
            optimise.panel(),
            accent.panel(),
        ]),
        dcc.Graph(id="unit-hist", config={"displayModeBar": False}),
    ])
    return html.Div(className="units", children=[
        html.Div(className="pickers", children=[
            dcc.Dropdown(id="run-select", options=run_options, value=0, clearable=False,
                         style={"display": "none"} if len(ctx.runs) == 1 else {"minWidth": "260px"}),
            dcc.Dropdown(id="layer-select", clearable=False, style={"minWidth": "420px"}),
            html.Span(id="layer-info", className="status"),
            dcc.RadioItems(id="grid-shows", className="grid-shows", value=GRID_SHOWS[0], inline=True,
                           options=[{"label": "optimised images", "value": "maximized"},
                                    {"label": "top-1 patches", "value": "patch"}]),
            html.Div(id="units-message", className="message"),
            html.Details(id="export-hint", className="export-hint", children=[
                html.Summary("export"),
                html.Span("these runs as a static site (plain files, no server): "),
                html.Code(export_command([run.root for run in ctx.runs], "vis-site"), id="export-command")]),
        ]),
        html.Div(className="units-body", children=[
            html.Div(id="unit-grid", className="unit-grid",
                     style={"gridTemplateColumns": f"repeat({GRID_COLUMNS}, 1fr)"}),
            detail,
        ]),
    ])


# --------------------------------------------------------------------------- callbacks

def checked_selection(ctx: Context, value: object) -> dict:
    """The selection a callback got from the browser, checked on the server; a forged or stale one
    changes nothing (Dash's PreventUpdate)."""
    try:
        return inputs.selection(ctx, value)
    except VisError:
        raise dash.exceptions.PreventUpdate from None


def register(app: dash.Dash, ctx: Context, manager: dash.DiskcacheManager | None = None) -> None:
    """Wire the Units tab."""
    if not ctx.runs:
        return
    optimise.register(app, ctx, manager)
    accent.register(app, ctx, manager)

    @app.callback(
        Output("url", "search"), Output("run-select", "value"), Output("layer-select", "options"),
        Output("layer-select", "value"), Output("selection", "data"), Output("grid-key", "data"),
        Output("units-message", "children"),
        Input("url", "search"), Input("run-select", "value"), Input("layer-select", "value"),
        Input("grid-click", "data"), Input("keys", "data"),
        State("selection", "data"), State("grid-key", "data"), State("tabs", "value"))
    def select(search, run_value, layer_value, click, keys, current, grid_key, tab):  # noqa: ANN001, ANN202
        trigger = cb.triggered_id
        try:  # every value comes from the browser: a forged one changes nothing
            current = inputs.selection(ctx, current) if current is not None else None
            new = select_from_trigger(ctx, trigger, search, run_value, layer_value, keys, current, tab, click)
        except (VisError, ValueError, TypeError, KeyError, AttributeError):
            raise dash.exceptions.PreventUpdate from None
        if new is None:
            raise dash.exceptions.PreventUpdate
        run = ctx.runs[new["run"]]
        options = [{"label": layer_label(run, name), "value": name} for name in run.layers]
        key = {"run": new["run"], "layer": new["layer"]}
        query = parse_query(search)
        from_link = current is None or trigger in (None, "url")
        message = selection_problems(ctx, query, new) if from_link else ""
        name = url_layer(run, new["layer"], query.get("layer"))
        return (make_query(new["run"], name, new["unit"], len(ctx.runs)), new["run"], options,
                new["layer"], new, dash.no_update if key == grid_key else key, message)

    @app.callback(Output("unit-grid", "children"), Output("layer-info", "children"), Input("grid-key", "data"),
                  Input("grid-shows", "value"))
    def grid(key, shows):  # noqa: ANN001, ANN202
        try:
            inputs.selection(ctx, {**key, "unit": 0})
        except (VisError, TypeError):
            raise dash.exceptions.PreventUpdate from None
        if shows not in GRID_SHOWS:
            raise dash.exceptions.PreventUpdate
        return unit_grid(ctx, key["run"], key["layer"], shows), layer_summary(ctx.runs[key["run"]], key["layer"])

    app.clientside_callback(
        "function(sel) { return window.visMarkSelected(sel); }",
        Output("unit-grid", "className"), Input("selection", "data"), Input("unit-grid", "children"))

    @app.callback(
        Output("detail-title", "children"),
        Output({"type": "top9-img", "rank": ALL}, "src"), Output({"type": "top9-value", "rank": ALL}, "children"),
        Output("unit-views", "children"), Output("unit-hist", "figure"), Output("max-view", "src"),
        Output("max-status", "children"), Output("source-view", "src", allow_duplicate=True),
        Input("selection", "data"), prevent_initial_call=True)
    def detail(sel):  # noqa: ANN001, ANN202
        sel = checked_selection(ctx, sel)
        return unit_detail(ctx, sel["run"], sel["layer"], sel["unit"])

    @app.callback(Output("views-request", "data"), Output("views-status", "children"),
                  Input("selection", "data"), prevent_initial_call=True)
    def views_request(sel):  # noqa: ANN001, ANN202
        sel = checked_selection(ctx, sel)
        request, status = select_views_request(ctx, sel)
        return (dash.no_update if request is None else request), status

    @app.callback(
        Output("unit-views", "children", allow_duplicate=True), Output("views-status", "children", allow_duplicate=True),
        Input("views-request", "data"), background=True, manager=manager, prevent_initial_call=True,
        running=[(Output("views-progress", "style"), {"display": "inline-block"}, {"display": "none"})],
        progress=[Output("views-status", "children", allow_duplicate=True)],
        cancel=[Input("selection", "data")])
    def compute_views(set_progress, request):  # noqa: ANN001, ANN202
        request = checked_selection(ctx, request)
        in_job_process()
        run_index, layer, unit = request["run"], request["layer"], request["unit"]
        set_progress(f"computing the {', '.join(MODES)} views of unit {unit}'s top-{ctx.runs[run_index].manifest.get('k', 9)}…")
        start = time.perf_counter()
        try:
            queued = lambda place, waiting: set_progress(f"unit {unit}: views {queued_text(ctx, place, waiting)}")  # noqa: E731
            with ctx.slots.slot(queued):
                rendered = views_on_demand(ctx, run_index, layer, unit)
        except VisError as exc:
            return dash.no_update, f"⚠ views of unit {unit}: {exc}"
        seconds = time.perf_counter() - start
        done = (f"unit {unit}: views computed in {seconds:.1f} s and cached in the run" if rendered
                else f"unit {unit}: views already in the run")
        return view_rows(ctx, run_index, layer, unit), done

    @app.callback(Output({"type": "top9-inside", "rank": ALL}, "style"), Input("selection", "data"),
                  prevent_initial_call=True)
    def inside(sel):  # noqa: ANN001, ANN202
        sel = checked_selection(ctx, sel)
        return inside_styles(ctx, sel["run"], sel["layer"], sel["unit"])

    @app.callback(Output("source-view", "src"), Input({"type": "top9-img", "rank": ALL}, "n_clicks"),
                  State("selection", "data"), prevent_initial_call=True)
    def source(_clicks, sel):  # noqa: ANN001, ANN202
        trigger = cb.triggered_id
        if not sel or not isinstance(trigger, dict) or not cb.triggered[0]["value"]:
            raise dash.exceptions.PreventUpdate
        sel = checked_selection(ctx, sel)
        return f"/vis/source/{sel['run']}/{sel['layer']}/{sel['unit']}/{trigger['rank']}.png"


def select_from_trigger(ctx: Context, trigger: Any, search: str | None, run_value: Any, layer_value: Any,
                        keys: Any, current: dict | None, tab: str | None, click: Any = None) -> dict | None:
    """The new selection for whatever fired the selection callback (None: nothing changes)."""
    if current is None or trigger in (None, "url"):
        return resolve_selection(ctx, parse_query(search))
    run = ctx.runs[current["run"]]
    if trigger == "run-select":
        if run_value == current["run"] or ctx.run(run_value) is None:
            return None
        return resolve_selection(ctx, {"run": str(run_value)})
    if trigger == "layer-select":
        if not layer_value or layer_value == current["layer"]:
            return None
        return resolve_selection(ctx, {"run": str(current["run"]), "layer": layer_value})
    if trigger == "keys":
        if tab != "units" or not keys:
            return None
        unit = step_unit(current["unit"], keys.get("key", ""), run.units(current["layer"]))
        return None if unit == current["unit"] else {**current, "unit": unit}
    if trigger == "grid-click":
        if not click or click.get("unit") is None:
            return None
        return {**current, "unit": clamp(int(click["unit"]), run.units(current["layer"]))}
    return None


def sprite(ctx: Context, run_index: int, layer: str, shows: str = "maximized") -> tuple[Path, int]:
    """One PNG holding every unit's thumbnail (THUMB px, GRID_COLUMNS per row; what each shows: see
    :data:`~vistoolbox.mining.gallery.GRID_SHOWS`) → (path, rows).

    Cached under a key of the thumbnails' paths and modification times, so a newly optimised image
    shows up on the next render. One request instead of one per unit keeps a 256-unit grid fast."""
    run = ctx.runs[run_index]
    thumbs = thumbnails(run, layer, shows)
    rows = max(1, math.ceil(len(thumbs) / GRID_COLUMNS))
    key = content_key("sprite", run.root, layer, THUMB,
                      *[(str(p), p.stat().st_mtime_ns) if p else None for p in thumbs])
    out = ctx.jobs_dir / f"{key}.png"
    if not out.is_file():
        write_bytes(out, png_bytes(sprite_image(thumbs, GRID_COLUMNS, THUMB)))
    return out, rows


def unit_grid(ctx: Context, run_index: int, layer: str, shows: str = "maximized") -> list:
    """One cell per unit, each showing its tile of the layer's sprite (see :func:`sprite`). Cells are
    plain elements (no callback per cell): assets/keys.js reports clicks through the ``grid-click`` store."""
    path, rows = sprite(ctx, run_index, layer, shows)
    url = cache_url(path.stem)
    size = f"{GRID_COLUMNS * 100}% {rows * 100}%"
    cells: list = [html.Img(id="grid-sprite", src=url, alt="", style={"display": "none"})]
    for unit in range(ctx.runs[run_index].units(layer)):
        row, col = divmod(unit, GRID_COLUMNS)
        position = f"{100 * col / (GRID_COLUMNS - 1):.4f}% {100 * row / (rows - 1) if rows > 1 else 0:.4f}%"
        cells.append(html.Div(html.Span(str(unit), className="unit-no"), className="unit-cell",
                              title=f"unit {unit}", **{"data-unit": unit},
                              style={"backgroundImage": f"url({url})", "backgroundSize": size,
                                     "backgroundPosition": position}))
    return cells


def inside_styles(ctx: Context, run_index: int, layer: str, unit: int, ranks: int = 9) -> list[dict]:
    """CSS of the frame over each top-9 patch that marks its image part (:func:`image_part`); the
    padding around it is veiled. Hidden where a patch is all image."""
    run = ctx.runs[run_index]
    topk = run.topk(layer)
    styles = []
    for rank in range(ranks):
        part = None
        if rank < topk["y"].shape[1] and int(topk["image_index"][unit, rank]) >= 0:
            part = image_part(run, layer, int(topk["y"][unit, rank]), int(topk["x"][unit, rank]))
        if part is None:
            styles.append({"display": "none"})
            continue
        left, top, right, bottom = (100 * v for v in part)
        styles.append({"left": f"{left:.3f}%", "top": f"{top:.3f}%", "width": f"{right - left:.3f}%",
                       "height": f"{bottom - top:.3f}%"})
    return styles


def _hit_ranks(run: Run, layer: str, unit: int) -> list[int]:
    """The filled top-k ranks of a unit (at most 9 are shown)."""
    index = run.topk(layer)["image_index"][unit]
    return [rank for rank in range(min(9, len(index))) if int(index[rank]) >= 0]


def views_stored(run: Run, layer: str, unit: int) -> bool:
    """True when every view of every shown hit of the unit is in the run."""
    return all(run.patch(layer, unit, rank, mode).is_file() for rank in _hit_ranks(run, layer, unit) for mode in MODES)


def select_views_request(ctx: Context, sel: dict | None) -> tuple[dict | None, str]:
    """What selecting a unit asks of the views job: ``(request, status)``; request None when the
    unit's views are already in the run."""
    if not sel or views_stored(ctx.runs[sel["run"]], sel["layer"], sel["unit"]):
        return None, ""
    return {**sel, "asked": time.time()}, "no views stored for this unit yet: computing them…"


def views_on_demand(ctx: Context, run_index: int, layer: str, unit: int) -> bool:
    """Compute the unit's deconv/backprop/guided views and cache them in the run (as mining ``--with``
    would have); False when they were already there."""
    run = ctx.runs[run_index]
    if views_stored(run, layer, unit):
        return False
    render_unit_views(run, ctx.model_for(run), layer, [unit], MODES, quiet=True)
    return True


def view_rows(ctx: Context, run_index: int, layer: str, unit: int) -> list:
    """One row per view mode whose pictures are stored for every shown hit of the unit."""
    run = ctx.runs[run_index]
    rows = []
    ranks = _hit_ranks(run, layer, unit)
    for view in MODES:
        paths = [run.patch(layer, unit, rank, view) for rank in ranks]
        if paths and all(p.is_file() for p in paths):
            rows.append(html.Div(className="view-row", children=[
                html.H4(view), *[html.Img(src=run_url(ctx, run_index, p), className="view-img") for p in paths]]))
    return rows


def unit_detail(ctx: Context, run_index: int, layer: str, unit: int) -> tuple:
    """Everything the detail pane shows for one unit."""
    run = ctx.runs[run_index]
    topk = run.topk(layer)
    values = topk["values"][unit]
    srcs, captions = [], []
    for rank in range(9):
        path = run.patch(layer, unit, rank)
        valid = rank < len(values) and int(topk["image_index"][unit, rank]) >= 0
        srcs.append(run_url(ctx, run_index, path) if valid and path.is_file() else None)
        captions.append(f"#{rank + 1}: {float(values[rank]):.3g}" if valid else "")
    views = view_rows(ctx, run_index, layer, unit)
    maximized = run.maximized(layer, unit)
    max_src = optimise.versioned_url(ctx, run_index, maximized) if maximized.is_file() else None
    status = "cached in the run" if max_src else "not computed yet"
    aliases = run.aliases(layer)
    title = f"{aliases[0] if aliases else layer} · unit {unit} ({unit_stem(unit)})"
    return title, srcs, captions, views, histogram_figure(run, layer, unit), max_src, status, None
