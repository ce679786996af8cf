"""Time until a layer's unit grid is fully loaded in headless Chromium: one sprite PNG per layer
(ours) vs one image URL per unit (baseline: 256 requests for a 256-unit layer).

    python scripts/bench_dashboard_grid.py RUN [--layer conv3_3] [--repeats 5]

Each sample clears the browser cache, opens ``/?layer=<layer>&unit=0`` and measures, in the browser,
``performance.now()`` (ms since navigation start) when every ``#unit-grid img`` has decoded.
Ours and the baseline alternate on one warm server each; medians; JSON on the last line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests" / "dashboard")]

WAIT_JS = """
var done = arguments[arguments.length - 1], n = arguments[0];
function check() {
  var cells = document.querySelectorAll('#unit-grid .unit-cell'), imgs = document.querySelectorAll('#unit-grid img');
  var ok = cells.length === n && imgs.length > 0 &&
           Array.prototype.every.call(imgs, function (i) { return i.complete && i.naturalWidth > 0; });
  if (ok) { done(performance.now()); } else { setTimeout(check, 5); }
}
check();
"""


def url_grid(ctx, run_index, layer):  # noqa: ANN001, ANN201
    """Baseline: each cell an <img> with its own thumbnail URL."""
    from dash import html

    from vistoolbox.dashboard.serving import run_url
    from vistoolbox.mining.gallery import thumbnail

    run = ctx.runs[run_index]
    cells = []
    for unit in range(run.units(layer)):
        thumb = thumbnail(run, layer, unit)
        cells.append(html.Div([html.Img(src=run_url(ctx, run_index, thumb), style={"width": "100%"}),
                               html.Span(str(unit), className="unit-no")],
                              id={"type": "unit-cell", "unit": unit}, className="unit-cell", n_clicks=0,
                              **{"data-unit": unit}))
    return cells


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--layer", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from dash.testing.application_runners import ThreadedRunner
    from selenium import webdriver

    from vistoolbox.dashboard import create_app, units
    from dashboard_browser import chrome_options

    original = units.unit_grid
    servers, urls = [], {}
    for name in ("ours", "baseline"):
        units.unit_grid = original if name == "ours" else url_grid
        app = create_app([args.run], cache_dir=tempfile.mkdtemp(prefix="bench-dash-"))
        run = app.vis_context.runs[0]
        layer = run.resolve(args.layer) if args.layer else run.layers[-1]
        server = ThreadedRunner()
        server.start(app)
        servers.append(server)
        urls[name] = f"{server.url.rstrip('/')}/?layer={layer}&unit=0"
    units.unit_grid = original
    count = run.units(layer)
    driver = webdriver.Chrome(options=chrome_options(tempfile.mkdtemp(prefix="bench-chrome-")))
    driver.set_script_timeout(60)
    times = {"ours": [], "baseline": []}
    try:
        for name in ("ours", "baseline"):             # warm-up (server imports, browser cache of JS)
            driver.get(urls[name])
            driver.execute_async_script(WAIT_JS, count)
        for _ in range(args.repeats):
            for name in ("ours", "baseline"):
                driver.get("about:blank")
                driver.execute_cdp_cmd("Network.clearBrowserCache", {})   # a first visit, every time
                driver.get(urls[name])
                times[name].append(driver.execute_async_script(WAIT_JS, count))
    finally:
        driver.quit()
        for server in servers:
            server.stop()
    med = {name: statistics.median(v) for name, v in times.items()}
    print(json.dumps({"benchmark": "dashboard unit grid load (navigation start -> all thumbnails decoded)",
                      "layer": layer, "units": count, "repeats": args.repeats, "ms_ours_median": round(med["ours"], 1),
                      "ms_baseline_per_unit_urls_median": round(med["baseline"], 1),
                      "ratio_baseline_over_ours": round(med["baseline"] / med["ours"], 2),
                      "ms_ours": [round(t, 1) for t in times["ours"]],
                      "ms_baseline": [round(t, 1) for t in times["baseline"]]}))


if __name__ == "__main__":
    main()
