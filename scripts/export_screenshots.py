"""Screenshots of an exported site for the README, opened from file:// in headless Chromium.

    python scripts/export_screenshots.py SITE OUT_DIR --page run/features.28/unit_0017.html [--rank 0]
        [--grid run/features.28/index.html] [--width 1280] [--height 900]

Writes OUT_DIR/export-unit.png (the unit page, at `--rank`'s source image) and, with --grid,
OUT_DIR/export-grid.png. Exits non-zero when an image of a page did not decode.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests" / "dashboard")]


def shoot(driver, url: str, out: Path) -> None:  # noqa: ANN001
    driver.get(url)
    end = time.time() + 30
    while not driver.execute_script("return Array.from(document.images).every(i => i.complete)"):
        if time.time() > end:
            raise SystemExit(f"{url}: images still loading after 30 s")
        time.sleep(0.05)
    widths = driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    if not all(widths):
        raise SystemExit(f"{url}: an image did not decode ({widths})")
    driver.save_screenshot(str(out))
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("site")
    parser.add_argument("out")
    parser.add_argument("--page", required=True, help="unit page, relative to SITE")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--grid", default=None, help="layer page, relative to SITE")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from dashboard_browser import CHROMEDRIVER, chrome_options

    site, out = Path(args.site).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="vis-chrome-")
    driver = webdriver.Chrome(options=chrome_options(profile), service=Service(CHROMEDRIVER))
    driver.set_window_size(args.width, args.height)
    try:
        shoot(driver, (site / args.page).as_uri() + f"#r{args.rank}", out / "export-unit.png")
        if args.grid:
            shoot(driver, (site / args.grid).as_uri(), out / "export-grid.png")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
