"""What `vis export` costs on a run: the site's size and files (per layer), the time of a first
export into a new folder, of a re-export with nothing changed, and (with --browser) how long a layer
grid and a unit page take to show in headless Chromium from file://.

    python scripts/bench_export.py RUN [--layers conv1,conv5] [--repeats 3] [--browser]

Exports go to a temporary folder on the run's file system (so images are hard links); the run is
only read. Medians over --repeats; the load average is recorded beside the times. JSON on the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests" / "dashboard")]

WAIT_JS = """
var done = arguments[arguments.length - 1];
function check() {
  var imgs = document.images;
  var ok = imgs.length > 0 && Array.prototype.every.call(imgs, function (i) { return i.complete && i.naturalWidth > 0; });
  if (ok) { done([performance.now(), imgs.length]); } else { setTimeout(check, 5); }
}
check();
"""


def du(path: Path) -> int:
    """Bytes of the distinct files under `path` (hard links counted once)."""
    seen, total = set(), 0
    for p in path.rglob("*"):
        if p.is_file():
            info = p.stat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def page_times(pages: list[Path], repeats: int) -> list[dict]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from dashboard_browser import CHROMEDRIVER, chrome_options

    profile = tempfile.mkdtemp(prefix="vis-chrome-")
    driver = webdriver.Chrome(options=chrome_options(profile), service=Service(CHROMEDRIVER))
    driver.set_script_timeout(60)
    out = []
    try:
        for page in pages:
            samples, count = [], 0
            for _ in range(repeats + 1):                    # the first load warms the browser, not counted
                driver.execute_cdp_cmd("Network.clearBrowserCache", {})
                driver.get(page.as_uri())
                ms, count = driver.execute_async_script(WAIT_JS)
                samples.append(ms)
            out.append({"page": page.name, "images": count, "ms_median": round(statistics.median(samples[1:]), 1)})
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--layers", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()

    from vistoolbox.export import MIB, export_site
    from vistoolbox.rundir import open_run

    run = open_run(args.run)
    layers = args.layers.split(",") if args.layers else None
    scratch = Path(tempfile.mkdtemp(prefix="vis-export-bench-", dir=run.root.parent))
    first, again, loads = [], [], []
    try:
        for i in range(args.repeats):
            site = scratch / f"site{i}"
            start = time.perf_counter()
            report = export_site([run.root], site, layers=layers)
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            second = export_site([run.root], site, layers=layers)
            again.append(time.perf_counter() - start)
            assert not second.written and not second.removed
            loads.append(os.getloadavg()[0])
        site = scratch / "site0"
        made = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and p.stat().st_nlink == 1)
        result = {
            "benchmark": "vis export (first export, unchanged re-export, site size)",
            "run": str(run.root), "layers": [c for c in report.groups if c.count("/") == 1 and not c.endswith("_images")],
            "units": sum(run.units(name) for name in (layers or run.layers)),
            "files": report.files, "site_mib": round(report.size / MIB, 1),
            "made_by_export_mib": round(made / MIB, 2),
            "linked": report.linked, "copied": report.copied,
            "run_layers_mib": round(du(run.root / "layers") / MIB, 1),
            "groups_mib": {g: [n, round(b / MIB, 2)] for g, (n, b) in sorted(report.groups.items())},
            "first_export_s_median": round(statistics.median(first), 2),
            "reexport_unchanged_s_median": round(statistics.median(again), 2),
            "repeats": args.repeats, "load_average_1min": [round(v, 1) for v in loads], "cpus": os.cpu_count(),
        }
        if args.browser:
            from vistoolbox.export.content import slug

            folder = next(p for p in site.iterdir() if p.is_dir() and not p.name.startswith("_"))
            names = [run.resolve(name) for name in layers] if layers else run.layers
            first_layer, last_layer = folder / slug(names[0]), folder / slug(names[-1])
            result["browser_file_url"] = page_times([last_layer / "index.html", last_layer / "unit_0000.html",
                                                     first_layer / "unit_0001.html"], args.repeats)
        print(json.dumps(result))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
