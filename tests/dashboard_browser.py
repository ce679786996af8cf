"""Headless-Chromium plumbing for the dashboard's browser tests (dash.testing + selenium)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

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
            duo.start_server(app)
            yield duo
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(duo, name: str) -> Path:  # noqa: ANN001
    """Save a PNG of the page to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    duo.driver.save_screenshot(str(path))
    return path
