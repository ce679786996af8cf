"""The exported site in a real headless Chromium, opened from file:// (no server): index → layer →
unit → next unit with every image decoded, deep links, arrow keys, the receptive-field box over the
source image, and a hostile run rendered as text. Screenshots go to test-artifacts/."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
from dashboard_browser import ARTIFACTS, CHROMEDRIVER, chrome_options, needs_browser, write_dataset  # noqa: E402

from export_runs import write_run  # noqa: E402

pytestmark = [pytest.mark.browser, needs_browser, pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]

LAYERS = ["conv1_1", "conv3_3"]


@pytest.fixture(scope="module")
def site(hed_vgg16, tmp_path_factory) -> dict:
    """A demo-like run (real photos, the offline VGG16, views for the first units, optimised images for
    two units) exported to a static site."""
    from vistoolbox import maximize_layer, mine, open_run
    from vistoolbox.export import export_site
    from vistoolbox.mining import render_unit_views

    root = tmp_path_factory.mktemp("export-site")
    run_dir = mine(hed_vgg16, write_dataset(root / "images"), root / "run", layers=LAYERS, resize=128, crop=112,
                   batch_size=12, quiet=True)
    render_unit_views(run_dir, hed_vgg16, "conv3_3", range(1), ["deconv"], quiet=True)
    maximize_layer(hed_vgg16, "conv3_3", run_dir, units=[0, 1], steps=8, size=64, batch=2, quiet=True)
    report = export_site([run_dir], root / "site", title="demo-like run", datasets=[root / "images"])
    return {"run": open_run(run_dir), "site": root / "site", "report": report, "root": root}


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vis-chrome-")
    browser = webdriver.Chrome(options=chrome_options(profile), service=Service(CHROMEDRIVER))
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


def wait_for(driver, script: str, timeout: float = 15):  # noqa: ANN001
    end = time.time() + timeout
    while True:
        value = driver.execute_script(script)
        if value or time.time() > end:
            return value
        time.sleep(0.05)


def images_decoded(driver) -> list[int]:  # noqa: ANN001
    """naturalWidth of every <img> of the page once all have loaded (or failed)."""
    wait_for(driver, "return Array.from(document.images).every(i => i.complete)")
    return driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")


def press(driver, key: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def page_name(driver) -> str:  # noqa: ANN001
    return driver.current_url.split("#")[0].rsplit("/", 1)[-1]


def test_index_layer_unit_next_unit_from_file(site, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = site["run"]
    conv3 = run.resolve("conv3_3")
    driver.get((site["site"] / "index.html").as_uri())
    assert driver.title == "demo-like run"
    rows = driver.find_elements(By.CSS_SELECTOR, "table.layers tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == run.layers
    assert "conv3_3" in rows[1].text and "256×28×28" in rows[1].text     # aliases and shape (112-px crop)

    rows[1].find_element(By.TAG_NAME, "a").click()                        # → the layer's grid
    assert page_name(driver) == "index.html" and conv3 in driver.current_url
    assert images_decoded(driver) == [16 * 48]                             # the sprite
    cells = driver.find_elements(By.CSS_SELECTOR, ".grid .cell")
    assert len(cells) == 256
    cells[0].click()                                                       # → unit 0

    assert page_name(driver) == "unit_0000.html"
    widths = images_decoded(driver)
    assert len(widths) == 9 + 1 + 9 + 1 and all(w > 0 for w in widths), widths   # top-9, source, deconv, optimised
    assert "unit 0" in driver.find_element(By.TAG_NAME, "h1").text
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "export-unit.png"))

    driver.find_element(By.CSS_SELECTOR, "a[rel=next]").click()           # → unit 1 by its link
    assert page_name(driver) == "unit_0001.html"
    assert all(w > 0 for w in images_decoded(driver))
    press(driver, Keys.ARROW_RIGHT)                                        # → unit 2 by the arrow key
    wait_for(driver, "return location.href.endsWith('unit_0002.html')")
    assert page_name(driver) == "unit_0002.html"
    widths = images_decoded(driver)
    assert len(widths) == 9 + 1 and all(w > 0 for w in widths)           # no views, no optimised image here
    assert "not in the run" in driver.find_element(By.TAG_NAME, "body").text
    press(driver, Keys.ARROW_DOWN)                                         # one grid row down
    wait_for(driver, "return location.href.endsWith('unit_0018.html')")
    press(driver, Keys.ARROW_LEFT)
    wait_for(driver, "return location.href.endsWith('unit_0017.html')")
    assert page_name(driver) == "unit_0017.html"
    press(driver, Keys.ESCAPE)                                             # back to the grid
    wait_for(driver, "return location.href.endsWith('/index.html')")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".grid .cell")) == 256


def test_deep_link_and_the_box_frames_the_patch(site, driver):
    """A permalink with a rank opens that unit with that hit's source image; the red box, measured
    in the page, frames the pixels of the patch the miner cut (a shifted box does not)."""
    from selenium.webdriver.common.by import By

    from vistoolbox.features.receptive import field_of, unit_box

    run = site["run"]
    layer = run.resolve("conv3_3")
    topk, info = run.topk(layer), run.layer_info(layer)
    checked = 0
    for unit, rank in ((5, 3), (40, 0), (77, 6), (130, 1)):
        driver.get((site["site"] / "run" / layer / f"unit_{unit:04d}.html").as_uri() + f"#r{rank}")
        assert f"unit {unit}" in driver.find_element(By.TAG_NAME, "h1").text
        wait_for(driver, f"return document.querySelector('.hit.selected') && "
                         f"document.querySelector('.hit.selected').dataset.rank === '{rank}'")
        assert driver.find_element(By.ID, "source-caption").text.startswith(f"#{rank + 1} · ")
        assert all(w > 0 for w in images_decoded(driver))
        box = driver.execute_script(
            "const i = document.getElementById('source-img'), f = document.getElementById('field-box');"
            "const a = i.getBoundingClientRect(), b = f.getBoundingClientRect();"
            "const s = i.naturalWidth / a.width;"
            "return [(b.left - a.left) * s, (b.top - a.top) * s, (b.right - a.left) * s, (b.bottom - a.top) * s,"
            " i.getAttribute('src')];")
        source = Image.open((site["site"] / "run" / layer / box[4]).resolve()).convert("RGB")
        crop = int(run.manifest["preprocessing"]["crop"])
        field = unit_box(field_of(info), int(topk["y"][unit, rank]), int(topk["x"][unit, rank]), (crop, crop))
        patch = np.asarray(Image.open(run.patch(layer, unit, rank)).convert("RGB")).astype(int)
        patch = patch[field.pad_top:patch.shape[0] - field.pad_bottom, field.pad_left:patch.shape[1] - field.pad_right]
        size = (patch.shape[1], patch.shape[0])
        left, top, right, bottom = (round(v) for v in box[:4])
        same = np.abs(np.asarray(source.crop((left, top, right, bottom)).resize(size)).astype(int) - patch).mean()
        shift = max(6, (right - left) // 2)
        moved = source.crop((left + shift, top, right + shift, bottom)).resize(size)
        other = np.abs(np.asarray(moved).astype(int) - patch).mean()
        assert same < 14 and 2 * same < other, (unit, rank, same, other)
        checked += 1
    assert checked == 4


def test_hostile_run_renders_as_text(driver, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from vistoolbox.export import export_site

    hostile = '<img src=x onerror="alert(1)">'
    run_dir = write_run(tmp_path / "evil", layers=(hostile,), units=2, classes=("<script>alert(2)</script>",))
    export_site([run_dir], tmp_path / "site", title=hostile, datasets=[tmp_path / "evil" / "data"])
    (page,) = (tmp_path / "site" / "run").glob("*/unit_0000.html")
    driver.get(page.as_uri())
    assert hostile in driver.find_element(By.TAG_NAME, "h1").text
    assert "<script>alert(2)</script>/img_" in driver.find_element(By.ID, "source-caption").text
    assert driver.title.endswith(hostile)
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert all(w > 0 for w in images_decoded(driver))
