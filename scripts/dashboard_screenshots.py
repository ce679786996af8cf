"""Screenshots of the dashboard for the README (Units and Transfer tabs) in headless Chromium.

    python scripts/dashboard_screenshots.py RUN OUT_DIR [--layer conv3_3] [--unit 38] [--steps 150]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests" / "dashboard")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--layer", default=None)
    parser.add_argument("--unit", type=int, default=0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--units-only", action="store_true", help="skip the Transfer screenshot")
    args = parser.parse_args()

    from selenium.webdriver.common.keys import Keys

    from vistoolbox.dashboard import create_app
    from dashboard_browser import dash_browser

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app([args.run])
    run = app.vis_context.runs[0]
    layer = run.resolve(args.layer) if args.layer else run.layers[0]
    with dash_browser(app) as duo:
        duo.driver.get(f"{duo.server_url}/?layer={layer}&unit={args.unit}")
        duo.wait_for_contains_text("#detail-title", f"unit {args.unit}", timeout=60)
        time.sleep(1.5)
        deadline = time.time() + 600                       # views computed on demand: wait for them
        while "computing" in duo.find_element("#views-status").text and time.time() < deadline:
            time.sleep(1)
        duo.find_elements("#top9 img")[0].click()
        time.sleep(1.5)
        duo.driver.save_screenshot(str(out / "dashboard-units.png"))
        if args.units_only:
            return

        duo.driver.get(duo.server_url + "/")
        duo.wait_for_element("#tab-transfer").click()
        duo.wait_for_element("#tr-content-thumbs img", timeout=30)
        duo.wait_for_element("#tr-style-thumbs img", timeout=30)
        for ident, value in (("#tr-size", str(args.size)), ("#tr-steps", str(args.steps))):
            box = duo.find_element(ident)
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(value)
        duo.find_element("#tr-run").click()
        duo.wait_for_contains_text("#tr-status", "done", timeout=900)
        time.sleep(1.5)
        duo.driver.save_screenshot(str(out / "dashboard-transfer.png"))
    print(out / "dashboard-units.png", out / "dashboard-transfer.png")


if __name__ == "__main__":
    main()
