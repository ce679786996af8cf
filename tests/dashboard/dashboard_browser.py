"""Headless-Chromium plumbing for the dashboard's browser tests (dash.testing + selenium)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.processes import free_port

CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

needs_browser = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                   reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                          "chromium-driver; .ci/run installs them)")


def chrome_options(profile: str):  # noqa: ANN201
    """Headless Chromium that works as root in a closed network."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--window-size=1500,1100",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return options


@contextlib.contextmanager
def dash_browser(app) -> Iterator:  # noqa: ANN001
    """``dash_duo``-like composite (one browser per module, not per test) serving `app` on localhost."""
    from dash.testing.application_runners import ThreadedRunner
    from dash.testing.composite import DashComposite

    profile = tempfile.mkdtemp(prefix="vis-chrome-")
    try:
        with ThreadedRunner() as server, DashComposite(
                server=server, browser="Chrome", headless=True, options=[chrome_options(profile)],
                download_path=tempfile.mkdtemp(prefix="vis-dl-"), percy_run=False, wait_timeout=30) as duo:
            duo.start_server(app, port=free_port())
            yield duo
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def attributes(duo, css: str, name: str) -> list:  # noqa: ANN001
    """Attribute `name` of every element matching `css`, read in one script call: elements that Dash
    or Plotly re-render between a find and a read never go stale."""
    return duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]));",
        css, name)


def screenshot(duo, name: str) -> Path:  # noqa: ANN001
    """Save a PNG of the page to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    duo.driver.save_screenshot(str(path))
    return path


SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
           "colorwheel", "retina", "coins", "camera", "clock", "brick")
RUN_LAYERS = "conv1_1,conv3_3"


def write_dataset(folder: Path, count: int = 12, longest: int = 160) -> Path:
    """A few real scikit-image photos written as PNG files (the dataset of the test run)."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLES[:count]:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image.thumbnail((longest, longest))
        image.save(folder / f"{name}.png")
    return folder


_MINED: dict[str, Path] = {}


def mine_run(root: Path) -> Path:
    """A real run made by the real ``vis mine`` (default model vgg16/hed, 2 layers, small crop);
    made once per test session and shared by the dashboard's test modules."""
    import subprocess
    import sys

    if "run" in _MINED:
        return _MINED["run"]

    dataset = write_dataset(root / "images")
    out = root / "run"
    cmd = [sys.executable, "-m", "vistoolbox.cli", "mine", "--dataset", str(dataset), "--out", str(out),
           "--layers", RUN_LAYERS, "--resize", "128", "--crop", "112", "--batch-size", "12", "--quiet",
           "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
                          timeout=300)
    if proc.returncode != 0:
        if "No such command 'mine'" in proc.stderr:
            pytest.skip("`vis mine` is not in this build yet")
        if "hed" in proc.stderr and "fetch" in proc.stderr:
            pytest.skip(f"hed weights unavailable: {proc.stderr.strip()}")
        raise AssertionError(f"vis mine failed: {proc.stderr}")
    _MINED["run"] = out
    return out
