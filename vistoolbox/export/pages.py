"""The site's HTML: the index of runs and layers, a layer's unit grid and a unit's page.

Pure functions from :mod:`.content` to text. Every string that comes from a run (names, paths,
records) goes through :func:`html.escape`; URLs are relative and built from slugs and numbers only,
so a page never points outside the site.
"""
from __future__ import annotations

import math
import shlex
from html import escape
from typing import Any, Sequence

from .._version import __version__
from ..mining.gallery import GRID_COLUMNS, THUMB, Histogram
from ..rundir import unit_stem
from .content import Hit, LayerContent, Percent, RunContent, UnitContent

__all__ = ["CSP", "LAYER_PAGE", "SPRITE", "histogram_svg", "index_page", "layer_page", "unit_page", "unit_page_name"]

#: What a page may load: its own site's images, style sheet and script; no inline script, no network.
CSP = "default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; base-uri 'none'; form-action 'none'"
LAYER_PAGE = "index.html"
SPRITE = "sprite.png"
ASSETS = "_site"


def unit_page_name(unit: int) -> str:
    """``unit_0012.html``: a unit's page inside its layer folder (the permalink)."""
    return f"{unit_stem(unit)}.html"


def _page(title: str, depth: int, body: str, head: str = "", attrs: str = "") -> str:
    up = "../" * depth
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="referrer" content="no-referrer">\n'
            f"<title>{escape(title)}</title>\n"
            f'<link rel="stylesheet" href="{up}{ASSETS}/style.css">\n'
            f'<script src="{up}{ASSETS}/site.js" defer></script>\n{head}</head>\n'
            f"<body{attrs}>\n{body}\n</body>\n</html>\n")


def _pair(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return str(value[0]) if len(value) == 2 and value[0] == value[1] else "×".join(map(str, value))
    return escape(str(value))


def _shape(info: dict) -> str:
    shape = info.get("shape")
    return "×".join(escape(str(v)) for v in shape) if isinstance(shape, (list, tuple)) else "–"


def _run_facts(content: RunContent) -> str:
    manifest = content.run.manifest
    counts = manifest.get("counts") or {}
    dataset = manifest.get("dataset") or {}
    seen = counts.get("seen", counts.get("images", len(content.run.images)))
    bits = [f"{escape(str(seen))} images ({escape(str(dataset.get('kind', '?')))})",
            f"top-{escape(str(manifest.get('k', '?')))}", f"status {escape(str(manifest.get('status', '?')))}"]
    if manifest.get("views"):
        bits.append("views: " + escape(", ".join(map(str, manifest["views"]))))
    return " · ".join(bits)


def index_page(title: str, runs: Sequence[RunContent]) -> str:
    """The site's front page: every run and its layers (shape, receptive field, aliases)."""
    parts = [f'<header><h1>{escape(title)}</h1><p class="sub">exported with vistoolbox {escape(__version__)}'
             " · static pages, no server needed</p></header>"]
    for content in runs:
        manifest = content.run.manifest
        rows = []
        for layer in content.layers:
            info = layer.info
            optimised = sum(u.maximized is not None for u in layer.units)
            with_views = sum(any(h.views for h in u.hits) for u in layer.units)
            rows.append(
                f'<tr><td><a href="{escape(content.slug)}/{escape(layer.slug)}/{LAYER_PAGE}">{escape(layer.name)}</a></td>'
                f"<td>{escape(', '.join(layer.aliases)) or '–'}</td><td>{escape(str(info.get('type', '–')))}</td>"
                f"<td>{_shape(info)}</td><td>{len(layer.units)}</td><td>{_pair(info.get('rf_size'))}</td>"
                f"<td>{_pair(info.get('rf_stride'))}</td><td>{_pair(info.get('rf_offset'))}</td>"
                f"<td>{optimised}</td><td>{with_views}</td></tr>")
        skipped = ("" if not content.skipped else
                   f'<p class="note">left out: {escape(", ".join(content.skipped))}</p>')
        parts.append(
            f'<section class="run" id="{escape(content.slug)}"><h2>{escape(content.slug)} '
            f'<span class="sub">{escape(str(manifest.get("model", "?")))} / {escape(str(manifest.get("weights", "?")))}'
            f"</span></h2><p class=\"facts\">{_run_facts(content)}</p>"
            '<table class="layers"><thead><tr><th>layer</th><th>aliases</th><th>type</th><th>shape</th>'
            "<th>units</th><th>receptive field</th><th>stride</th><th>offset</th><th>optimised</th>"
            "<th>with views</th></tr></thead><tbody>" + "".join(rows) + f"</tbody></table>{skipped}</section>")
    return _page(title, 0, "\n".join(parts))


def _crumbs(title: str, content: RunContent, layer: LayerContent | None = None, unit: int | None = None) -> str:
    bits = [f'<a href="../../index.html">{escape(title)}</a>', f'<a href="../../index.html#{escape(content.slug)}">'
            f"{escape(content.slug)}</a>"]
    if layer is not None:
        bits.append(f'<a href="{LAYER_PAGE}">{escape(layer.title)}</a>' if unit is not None else escape(layer.title))
    if unit is not None:
        bits.append(f"unit {unit}")
    return '<nav class="crumbs">' + " › ".join(bits) + "</nav>"


def _layer_facts(content: RunContent, layer: LayerContent) -> str:
    info = layer.info
    bits = [_shape(info), f"{len(layer.units)} units"]
    if info.get("rf_size"):
        bits.append(f"receptive field {_pair(info['rf_size'])} px / stride {_pair(info.get('rf_stride'))}")
    else:
        bits.append("sees the whole image")
    return " · ".join(bits) + " · " + _run_facts(content)


def layer_page(title: str, content: RunContent, layer: LayerContent) -> str:
    """A layer's grid: one cell per unit showing its tile of the layer's sprite, linking to its page."""
    cells = []
    for unit in layer.units:
        row, col = divmod(unit.unit, GRID_COLUMNS)
        cells.append(f'<a class="cell" href="{unit_page_name(unit.unit)}" title="unit {unit.unit}" '
                     f'style="background-position:-{col * THUMB}px -{row * THUMB}px"><span>{unit.unit}</span></a>')
    head = f"<style>.cell{{background-image:url({SPRITE})}}</style>\n"
    body = (_crumbs(title, content, layer) + f"<h1>{escape(layer.title)}</h1>"
            f'<p class="facts">{_layer_facts(content, layer)}</p>'
            '<p class="hint">Tiles: the optimised image where the run has one, else the top-1 patch. '
            "On a unit page, ← → step through the units, ↑ ↓ move a grid row, Esc comes back here.</p>"
            f'<img id="sprite" src="{SPRITE}" alt="" hidden>'
            f'<div class="grid" style="grid-template-columns:repeat({GRID_COLUMNS}, {THUMB}px)">' + "".join(cells)
            + "</div>")
    return _page(f"{layer.title} · {title}", 2, body, head)


def _box(percent: Percent | None) -> str:
    return "" if percent is None else " ".join(f"{v:.3f}" for v in percent)


def _box_style(percent: Percent | None) -> str:
    if percent is None:
        return ' hidden style=""'
    left, top, width, height = percent
    return f' style="left:{left:.3f}%;top:{top:.3f}%;width:{width:.3f}%;height:{height:.3f}%"'


def _value(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "–"


def _hit_caption(hit: Hit) -> str:
    name = hit.image.name if hit.image is not None else "source image not available here"
    return f"#{hit.rank + 1} · {_value(hit.value)} · {name}"


def histogram_svg(hist: Histogram, width: int = 420, height: int = 130) -> str:
    """A bar chart of a unit's histogram as inline SVG (a tooltip per bar with its range and count)."""
    counts = [int(c) for c in hist.counts]
    top = max(counts) if counts and max(counts) > 0 else 1
    left, bottom, plot_h = 36, 18, height - 26
    bar = (width - left - 4) / max(1, len(counts))
    bars = []
    for i, (count, label) in enumerate(zip(counts, hist.labels)):
        h = plot_h * count / top
        bars.append(f'<rect x="{left + i * bar:.2f}" y="{height - bottom - h:.2f}" width="{max(bar - 1, 1):.2f}" '
                    f'height="{h:.2f}"><title>{escape(label)}: {count} images</title></rect>')
    edges = hist.edges
    first, last = (f"{float(edges[0]):.3g}", f"{float(edges[-1]):.3g}") if len(edges) else ("", "")
    return (f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="activation histogram">'
            f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis"/>'
            f'<text x="{left - 4}" y="{height - bottom - plot_h + 10}" text-anchor="end">{top}</text>'
            f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">0</text>'
            f'<text x="{left}" y="{height - 4}">{escape(first)}</text>'
            f'<text x="{width - 4}" y="{height - 4}" text-anchor="end">{escape(last)}</text>'
            + "".join(bars) + "</svg>")


def _record_caption(record: dict[str, Any] | None) -> str:
    if not record:
        return "optimised image (no record)"
    bits = [str(record.get("preset", "?")), f"{record.get('steps_done', '?')} steps"]
    init, final = record.get("activation_initial"), record.get("activation_final")
    if isinstance(init, (int, float)) and isinstance(final, (int, float)):
        bits.append(f"activation {init:.4g} → {final:.4g}")
    if record.get("objective"):
        bits.append(str(record["objective"]))
    return " · ".join(bits)


def unit_page(title: str, content: RunContent, layer: LayerContent, unit: UnitContent) -> str:
    """A unit's page: top-k with values, the source image with the receptive-field box, the views, the
    optimised image when the run has it, the activation histogram, previous/next links."""
    n, u = len(layer.units), unit.unit
    # as the dashboard's grid: left/right one unit, up/down one grid row (clamped to the layer)
    step = lambda d: "" if min(max(u + d, 0), n - 1) == u else unit_page_name(min(max(u + d, 0), n - 1))  # noqa: E731
    nav = {"prev": step(-1), "next": step(1), "up": step(-GRID_COLUMNS), "down": step(GRID_COLUMNS),
           "layer": LAYER_PAGE}
    attrs = "".join(f' data-{key}="{escape(value)}"' for key, value in nav.items() if value)
    prev = f'<a rel="prev" href="{nav["prev"]}">← unit {u - 1}</a>' if nav["prev"] else '<span>← first unit</span>'
    nxt = f'<a rel="next" href="{nav["next"]}">unit {u + 1} →</a>' if nav["next"] else '<span>last unit →</span>'
    pager = f'<nav class="pager">{prev}<a href="{LAYER_PAGE}">all {n} units</a>{nxt}</nav>'

    figures = []
    for hit in unit.hits:
        src = f"../_images/{hit.image.site_name}" if hit.image is not None else ""
        img = (f'<img src="patches/{escape(hit.patch.name)}" alt="rank {hit.rank + 1}">' if hit.patch is not None
               else '<span class="missing">no patch</span>')
        figures.append(
            f'<figure><a class="hit" href="#r{hit.rank}" data-rank="{hit.rank}" data-src="{escape(src)}" '
            f'data-crop="{_box(hit.crop)}" data-field="{_box(hit.field)}" data-caption="{escape(_hit_caption(hit))}">'
            f"{img}</a><figcaption>#{hit.rank + 1} · {_value(hit.value)}</figcaption></figure>")
    top = (f'<section><h2>top-{len(unit.hits)}</h2><div class="top9">{"".join(figures)}</div></section>'
           if unit.hits else "<section><h2>top-k</h2><p class=\"note\">no image reached this unit</p></section>")

    first = unit.hits[0] if unit.hits else None
    if first is not None:
        has_src = first.image is not None
        src = f"../_images/{first.image.site_name}" if has_src else ""
        source = ('<section class="source-panel"><h2>source image <span class="sub">click a patch</span></h2>'
                  f'<figure class="source"><div class="frame"{"" if has_src else " hidden"}>'
                  f'<img id="source-img" src="{escape(src)}" alt="source image">'
                  f'<div id="crop-box" class="crop"{_box_style(first.crop)}></div>'
                  f'<div id="field-box" class="field"{_box_style(first.field)}></div></div>'
                  f'<figcaption id="source-caption">{escape(_hit_caption(first))}</figcaption></figure>'
                  '<p class="hint">red: the unit\'s receptive field at its strongest position; white: the crop '
                  "the model saw.</p></section>")
    else:
        source = ""

    rows = []
    for mode in sorted({m for hit in unit.hits for m in hit.views}):
        imgs = "".join(f'<img src="patches/{escape(hit.views[mode].name)}" alt="{escape(mode)} rank {hit.rank + 1}">'
                       if mode in hit.views else '<span class="missing"></span>' for hit in unit.hits)
        rows.append(f'<div class="view-row"><h3>{escape(mode)}</h3>{imgs}</div>')
    command = f"vis mine … --with deconv (or the dashboard's Live tab) for layer {layer.name}"
    views = ('<section><h2>views</h2>' + ("".join(rows) if rows else
             f'<p class="note">no deconv/backprop/guided views in the run for this unit ({escape(command)})</p>')
             + "</section>")

    if unit.maximized is not None:
        optimised = ('<section><h2>optimised image</h2><figure class="optimised">'
                     f'<img src="maximize/{escape(unit.maximized.name)}" alt="optimised image">'
                     f"<figcaption>{escape(_record_caption(unit.record))}</figcaption></figure></section>")
    else:
        hint = f"vis maximize --all --run RUN --layers {shlex.quote(layer.name)} --units {u}"
        optimised = ('<section><h2>optimised image</h2><p class="note">not in the run; make it with '
                     f"<code>{escape(hint)}</code> and export again</p></section>")

    hist = unit.histogram
    if hist is not None:
        stats = []
        if hist.mean_max is not None:
            stats.append(f"mean max {_value(hist.mean_max)}")
        if hist.frac_active is not None:
            stats.append(f"active in {100 * hist.frac_active:.1f}% of images")
        chart = ('<section><h2>activation histogram <span class="sub">spatial max per image, log-spaced bins</span></h2>'
                 f'{histogram_svg(hist)}<p class="facts">{" · ".join(stats)}</p></section>')
    else:
        chart = ""
    body = (_crumbs(title, content, layer, u) + pager + f"<h1>{escape(layer.title)} · unit {u}</h1>"
            + top + f'<div class="row">{source}{optimised}</div>' + views + chart)
    return _page(f"{layer.title} unit {u} · {title}", 2, body, attrs=attrs)
