"""Real-browser tests of the dashboard (dash.testing + headless Chromium) on a run made by `vis mine`.

Screenshots of every tab go to test-artifacts/."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from dashboard_browser import attributes, dash_browser, mine_run, needs_browser, screenshot

pytestmark = [pytest.mark.browser, needs_browser,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return mine_run(tmp_path_factory.mktemp("dash-run"))


@pytest.fixture(scope="module")
def duo(run_dir, tmp_path_factory):
    from vistoolbox.dashboard import create_app

    app = create_app([run_dir], device="cpu", cache_dir=tmp_path_factory.mktemp("dash-cache"),
                     datasets=[Path(run_dir).parent / "images"])   # the run's source images may be shown
    with dash_browser(app) as browser:
        browser.app = app
        yield browser


def natural_widths(duo, selector: str) -> list[int]:
    return duo.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(i => i.complete ? i.naturalWidth : -1)",
        selector)


def wait_images(duo, selector: str, count: int, timeout: float = 20) -> list[int]:
    """Wait until `count` images match `selector` and all decoded (naturalWidth > 0)."""
    end = time.time() + timeout
    widths: list[int] = []
    while time.time() < end:
        widths = natural_widths(duo, selector)
        if len(widths) == count and all(w > 0 for w in widths):
            return widths
        time.sleep(0.1)
    raise AssertionError(f"{selector}: wanted {count} loaded images, got {widths}")


def wait_grid(duo, units: int) -> None:
    """The grid has one cell per unit and its thumbnail sprite has loaded."""
    end = time.time() + 20
    while len(duo.find_elements("#unit-grid .unit-cell")) != units and time.time() < end:
        time.sleep(0.1)
    assert len(duo.find_elements("#unit-grid .unit-cell")) == units
    wait_images(duo, "#grid-sprite", 1)


def set_inputs(duo, values: dict[str, str]) -> None:
    for ident, value in values.items():
        box = duo.find_element(ident)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value)


def search(duo) -> str:
    return duo.driver.execute_script("return window.location.search")


def test_units_tab_layer_unit_top9_keys_and_source(duo):
    app = duo.app
    run = app.vis_context.runs[0]
    first, second = run.layers
    duo.wait_for_text_to_equal("#detail-title", f"{run.aliases(first)[0]} · unit 0 (unit_0000)", timeout=20)
    wait_grid(duo, run.units(first))
    assert search(duo) == f"?layer={run.short_name(first)}&unit=0"       # the alias, not features.0

    duo.select_dcc_dropdown("#layer-select", index=1)
    wait_grid(duo, run.units(second))      # 256 thumbnails
    assert run.units(second) == 256
    duo.find_element('.unit-cell[data-unit="21"]').click()
    duo.wait_for_contains_text("#detail-title", "unit 21")
    widths = wait_images(duo, "#top9 img", 9)
    assert len(widths) == 9 and min(widths) > 0
    assert search(duo) == f"?layer={run.short_name(second)}&unit=21"
    values = [float(e.text.split(": ")[1]) for e in duo.find_elements("#top9 figcaption")]
    topk = run.topk(second)["values"][21]
    assert values == pytest.approx([float(v) for v in topk[:9]], rel=5e-3)
    assert "selected" in duo.find_element('.unit-cell[data-unit="21"]').get_attribute("class")

    body = duo.find_element("body")
    body.send_keys(Keys.ARROW_RIGHT)
    duo.wait_for_contains_text("#detail-title", "unit 22")
    body.send_keys(Keys.ARROW_DOWN)
    duo.wait_for_contains_text("#detail-title", "unit 38")
    assert search(duo) == f"?layer={run.short_name(second)}&unit=38"

    duo.find_elements("#top9 img")[2].click()
    wait_images(duo, "#source-view", 1)
    duo.wait_for_element("#unit-hist .main-svg")
    screenshot(duo, "units")


def test_the_unit_grid_stays_in_view_on_a_long_page(duo):
    run = duo.app.vis_context.runs[0]
    duo.driver.set_window_size(1500, 700)
    try:
        duo.driver.get(f"{duo.server_url}/?layer={run.short_name(run.layers[1])}&unit=200")
        duo.wait_for_contains_text("#detail-title", "unit 200", timeout=20)
        wait_grid(duo, run.units(run.layers[1]))
        duo.wait_for_element("#unit-hist .main-svg")
        script = "window.scrollTo(0, document.body.scrollHeight); return [window.scrollY, window.innerHeight]"
        scrolled, height = duo.driver.execute_script(script)
        assert scrolled > 300                                          # the page is long: it did scroll
        time.sleep(0.3)
        rect = duo.driver.execute_script("return document.getElementById('unit-grid').getBoundingClientRect().toJSON()")
        assert 0 <= rect["top"] < 40 and rect["bottom"] <= height, rect   # the grid is still on screen
        cell = duo.driver.execute_script(
            "return document.querySelector('.unit-cell.selected').getBoundingClientRect().toJSON()")
        assert 0 <= cell["top"] and cell["bottom"] <= height, cell       # and so is the selected unit
    finally:
        duo.driver.set_window_size(1500, 1100)


def test_deep_link_reloads_to_the_same_view(duo):
    run = duo.app.vis_context.runs[0]
    layer = run.layers[1]
    first_alias, typed = run.aliases(layer)[0], run.aliases(layer)[-1]
    duo.driver.get(f"{duo.server_url}/?layer={typed}&unit=17")
    duo.wait_for_text_to_equal("#detail-title", f"{first_alias} · unit 17 (unit_0017)", timeout=20)
    wait_images(duo, "#top9 img", 9)
    assert search(duo) == f"?layer={typed}&unit=17"                  # the name the user typed stays
    assert duo.find_element("#units-message").text == ""
    duo.wait_for_element('.unit-cell.selected[data-unit="17"]')
    duo.driver.refresh()
    duo.wait_for_text_to_equal("#detail-title", f"{first_alias} · unit 17 (unit_0017)", timeout=20)
    duo.driver.get(f"{duo.server_url}/?layer={layer}&unit=18")         # canonical names work and stay too
    duo.wait_for_contains_text("#detail-title", "unit 18", timeout=20)
    assert search(duo) == f"?layer={layer}&unit=18"
    # a bad link falls back to something valid, and says what was wrong and what the valid names are
    duo.driver.get(f"{duo.server_url}/?layer=conv9&unit=99999")
    last = run.units(run.layers[0]) - 1
    duo.wait_for_contains_text("#detail-title", f"unit {last}", timeout=20)
    message = duo.find_element("#units-message").text
    assert "unknown layer 'conv9'" in message and "there is no unit '99999'" in message, message
    for name in run.layers:
        assert f"{run.short_name(name)} ({name})" in message
    assert message.endswith(f"showing {run.short_name(run.layers[0])} unit {last}")
    assert search(duo) == f"?layer={run.short_name(run.layers[0])}&unit={last}"
    duo.find_element('.unit-cell[data-unit="3"]').click()            # the next choice clears the message
    duo.wait_for_text_to_equal("#units-message", "")


def test_live_tab_maps_click_overlay_and_top9(duo):
    from vistoolbox.dashboard.live import tile_layout

    run = duo.app.vis_context.runs[0]
    duo.driver.get(duo.server_url + "/")
    duo.wait_for_element("#tab-live").click()
    duo.select_dcc_dropdown("#live-pick", index=0)
    image = duo.wait_for_element("#live-maps .main-svg image", timeout=30)
    meta = tile_layout(run.units(run.layers[0]), 224, 224)      # Live shows the run's first layer
    step = meta["tile"] + meta["pad"]
    montage_width = meta["ncols"] * step - meta["pad"]
    rect = duo.driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", image)
    scale = rect["width"] / montage_width
    target = meta["ncols"] + 2                                     # row 1, column 2
    x, y = (2 * step + meta["tile"] / 2) * scale, (step + meta["tile"] / 2) * scale
    ActionChains(duo.driver).move_to_element(image).move_by_offset(
        int(x - rect["width"] / 2), int(y - rect["height"] / 2)).click().perform()
    duo.wait_for_text_to_equal("#live-channel-title", f"channel {target}")
    assert int(duo.find_element("#live-channel").get_attribute("value")) == target
    wait_images(duo, "#live-overlay", 1)
    wait_images(duo, "#live-top9-img", 1)
    wait_images(duo, "#live-views img", 3)          # deconv, backprop, guided for this image
    assert duo.find_element("#live-top9-img").get_attribute("src").endswith(
        f"/layers/{run.layers[0]}/patches/unit_{target:04d}.png")
    # the hed VGG16 has no classifier: said where the top-5 would be
    assert "has no classifier" in duo.find_element("#live-no-classifier").text
    # a channel the layer does not have is clamped, visibly: box, title and a message agree
    box = duo.find_element("#live-channel")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("9999", Keys.ENTER)
    last = run.units(run.layers[0]) - 1
    duo.wait_for_text_to_equal("#live-channel-title", f"channel {last}")
    assert box.get_attribute("value") == str(last)
    assert f"has no channel 9999 (its {last + 1} channels are 0–{last}); showing channel {last}" in \
        duo.find_element("#live-channel-message").text
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(target), Keys.ENTER)
    duo.wait_for_text_to_equal("#live-channel-title", f"channel {target}")
    assert duo.find_element("#live-channel-message").text == ""
    # another image: the old pictures are marked "updating…" at once, until the new ones arrive
    old = duo.find_element("#live-overlay").get_attribute("src")
    duo.driver.execute_script("""
        window.visClasses = [];
        new MutationObserver(function () {
          window.visClasses.push([document.getElementById('live-channel-col').className,
                                  document.getElementById('live-overlay').getAttribute('src')]);
        }).observe(document.getElementById('live-channel-col'), {attributes: true});""")
    duo.select_dcc_dropdown("#live-pick", index=1)
    end = time.time() + 30
    while duo.find_element("#live-overlay").get_attribute("src") == old and time.time() < end:
        time.sleep(0.1)
    duo.wait_for_class_to_equal("#live-channel-col", "col")
    seen = duo.driver.execute_script("return window.visClasses")
    assert ["col stale", old] in seen and seen[-1][0] == "col" and seen[-1][1] != old, [c for c, _ in seen]
    screenshot(duo, "live")
    duo.find_element("#live-open-unit").click()                    # jump to the channel in Units
    duo.wait_for_contains_text("#detail-title", f"unit {target}", timeout=20)
    assert search(duo) == f"?layer={run.short_name(run.layers[0])}&unit={target}"
    assert "tab--selected" in duo.find_element("#tab-units").get_attribute("class")


def test_live_tile_hover_shows_channel_and_max_and_the_selection_is_outlined(duo):
    """Hover in real Chromium: a tile's label names its channel and maximum (the library's activations);
    the clicked tile gets an outline; the per-layer scale is one switch away."""
    from vistoolbox.dashboard.live import activations, store_run_image, tile_layout

    ctx = duo.app.vis_context
    run = ctx.runs[0]
    duo.driver.get(duo.server_url + "/")
    duo.wait_for_element("#tab-live").click()
    duo.select_dcc_dropdown("#live-pick", index=0)
    image = duo.wait_for_element("#live-maps .main-svg image", timeout=30)
    layer = run.layers[0]
    maps = activations(ctx, store_run_image(ctx, 0, 0)[0], layer)["maps"]
    meta = tile_layout(*maps.shape)
    step = meta["tile"] + meta["pad"]
    rect = duo.driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", image)
    scale = rect["width"] / (meta["ncols"] * step - meta["pad"])
    target = 2 * meta["ncols"] + 3                                 # row 2, column 3
    x, y = (3 * step + meta["tile"] / 2) * scale, (2 * step + meta["tile"] / 2) * scale
    ActionChains(duo.driver).move_to_element(image).move_by_offset(
        int(x - rect["width"] / 2), int(y - rect["height"] / 2)).perform()
    duo.wait_for_contains_text("#live-maps .hovertext", f"channel {target}", timeout=10)
    text = duo.find_element("#live-maps .hovertext").text
    shown = float(re.search(r"max (\S+)", text).group(1))
    assert shown == pytest.approx(float(maps[target].max()), rel=1e-3, abs=1e-6), text
    ActionChains(duo.driver).click().perform()
    duo.wait_for_text_to_equal("#live-channel-title", f"channel {target}")
    outline = duo.wait_for_element("#live-maps .shapelayer path", timeout=10)
    box = duo.driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", outline)
    image = duo.find_element("#live-maps .main-svg image")     # measured again: the page may have reflowed
    rect = duo.driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", image)
    scale = rect["width"] / (meta["ncols"] * step - meta["pad"])
    left, top = rect["left"] + 3 * step * scale, rect["top"] + 2 * step * scale
    assert box["left"] <= left + 1 and box["top"] <= top + 1, (box, left, top)
    assert box["right"] >= left + meta["tile"] * scale - 1 and box["bottom"] >= top + meta["tile"] * scale - 1
    assert box["width"] < (meta["tile"] + 2 * meta["pad"] + 4) * scale    # one tile, not more
    before = image.get_attribute("href")
    duo.find_element("#live-scale input[value='layer']").click()
    end = time.time() + 30
    while attributes(duo, "#live-maps .main-svg image", "href")[:1] in ([before], []) and time.time() < end:
        time.sleep(0.2)
    assert attributes(duo, "#live-maps .main-svg image", "href")[:1] not in ([before], [])
    duo.wait_for_element("#live-maps .shapelayer path", timeout=10)          # the outline stays


def test_live_upload_rejects_a_non_image(duo, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png" * 20)
    duo.driver.get(duo.server_url + "/")
    duo.wait_for_element("#tab-live").click()
    duo.find_element("#live-upload input[type=file]").send_keys(str(fake))
    duo.wait_for_contains_text("#live-message", "not an image")


def run_job(duo, tab: str, prefix: str, pickers: list[str], values: dict[str, str], timeout: float = 150) -> None:
    """Open a job tab, wait for its default images, type `values` into inputs, run, wait for the result."""
    duo.driver.get(duo.server_url + "/")
    duo.wait_for_element(f"#tab-{tab}").click()
    for picker in pickers:
        duo.wait_for_element(f"#{picker}-thumbs img")
    set_inputs(duo, {f"#{prefix}-{ident}": value for ident, value in values.items()})
    duo.find_element(f"#{prefix}-run").click()
    wait_images(duo, f"#{prefix}-result", 1, timeout=timeout)
    duo.wait_for_contains_text(f"#{prefix}-status", "done")
    duo.wait_for_element(f"#{prefix}-loss .main-svg .scatterlayer .trace")


def shown(duo, selector: str) -> bool:
    return duo.find_element(selector).is_displayed()


def test_texture_job_shows_progress_result_and_download(duo):
    duo.driver.get(duo.server_url + "/")
    duo.wait_for_element("#tab-texture").click()
    duo.wait_for_element("#tex-thumbs img")
    # before any run: no empty chart, no download button, a hint instead; compact number inputs
    assert not shown(duo, "#tex-loss") and not shown(duo, "#tex-download-btn") and not shown(duo, "#tex-result")
    assert "no result yet" in duo.find_element("#tex-result ~ .hint").text
    widths = [duo.find_element(f"#tex-{name}").size["width"] for name in ("size", "steps", "seed")]
    assert max(widths) < 160, widths
    run_job(duo, "texture", "tex", ["tex"], {"size": "48", "steps": "12"})
    assert duo.find_element("#tex-progress").get_attribute("value") == "12"
    assert duo.find_element("#tex-progress").get_attribute("max") == "12"
    assert shown(duo, "#tex-loss") and shown(duo, "#tex-download-btn") and not shown(duo, "#tex-result ~ .hint")
    legend = [e.text for e in duo.find_elements("#tex-loss .legendtext")]     # layers by their alias
    assert "style:relu1_1" in legend and not any("features" in name for name in legend), legend
    screenshot(duo, "texture")
    duo.find_element("#tex-download-btn").click()
    folder = Path(duo.download_path)
    end = time.time() + 20
    while not list(folder.glob("texture_*.png")) and time.time() < end:
        time.sleep(0.2)
    (saved,) = folder.glob("texture_*.png")
    assert Image.open(saved).size == (48, 48)

    # a new run clears the old result and chart; cancel keeps the last preview and says so
    set_inputs(duo, {"#tex-size": "64", "#tex-steps": "4000"})
    duo.find_element("#tex-run").click()
    duo.wait_for_contains_text("#tex-status", "step ", timeout=60)
    assert not shown(duo, "#tex-result") and not shown(duo, "#tex-loss") and not shown(duo, "#tex-download-btn")
    wait_images(duo, "#tex-preview", 1, timeout=60)
    duo.find_element("#tex-cancel").click()
    duo.wait_for_contains_text("#tex-note", "cancelled at step ")
    note = duo.find_element("#tex-note").text
    assert re.fullmatch(r"cancelled at step \d+/4000; nothing was saved", note), note
    time.sleep(1.5)                                        # the job's last poll comes and goes
    assert duo.find_element("#tex-note").text == note and not shown(duo, "#tex-result")
    assert shown(duo, "#tex-preview") and not shown(duo, "#tex-loss")
    assert not duo.find_element("#tex-run").get_attribute("disabled")


def test_transfer_job_shows_result(duo):
    run_job(duo, "transfer", "tr", ["tr-content", "tr-style"], {"size": "96", "steps": "25"})
    screenshot(duo, "transfer")


def test_an_uploaded_style_is_what_the_dropdown_shows(duo, tmp_path):
    """After an upload the style dropdown names the upload (not the sample it showed before), and the
    upload is the one style that runs."""
    from skimage import data

    from vistoolbox.dashboard.uploads import cache_image

    path = tmp_path / "my_style.png"
    Image.fromarray(data.coffee()).resize((120, 80)).save(path)
    key, _ = cache_image(duo.app.vis_context, Image.open(path).convert("RGB"))
    duo.driver.get(duo.server_url + "/")
    duo.wait_for_element("#tab-transfer").click()
    duo.wait_for_contains_text("#tr-style-pick", "immunohistochemistry")
    duo.find_element("#tr-style-upload input[type=file]").send_keys(str(path))
    duo.wait_for_contains_text("#tr-style-pick", "upload: my_style.png")
    assert "immunohistochemistry" not in duo.find_element("#tr-style-pick").text
    end = time.time() + 20
    while [src.rsplit("/", 1)[-1] for src in attributes(duo, "#tr-style-thumbs img", "src")] != [f"{key}.png"] \
            and time.time() < end:
        time.sleep(0.2)
    assert [src.rsplit("/", 1)[-1] for src in attributes(duo, "#tr-style-thumbs img", "src")] == [f"{key}.png"]


RECORD_CHANGES = """
window.visSeen = {status: [], preview: []};
new MutationObserver(function () {
  var status = document.getElementById('max-status').textContent;
  var preview = document.getElementById('max-preview').getAttribute('src');
  if (window.visSeen.status.slice(-1)[0] !== status) { window.visSeen.status.push(status); }
  if (preview && window.visSeen.preview.indexOf(preview) < 0) { window.visSeen.preview.push(preview); }
}).observe(document.getElementById('max-panel'), {subtree: true, childList: true, characterData: true,
                                                  attributes: true});
"""


def test_optimised_image_is_computed_on_demand_with_progress_and_cached_in_the_run(duo):
    import json
    import re

    run = duo.app.vis_context.runs[0]
    layer = run.layers[0]
    target = run.maximized(layer, 3)
    assert not target.exists()
    duo.driver.get(f"{duo.server_url}/?layer={layer}&unit=3")
    duo.wait_for_contains_text("#max-status", "not computed yet", timeout=20)
    duo.wait_for_text_to_equal("#max-run", "compute optimised image")
    duo.driver.execute_script(RECORD_CHANGES)
    set_inputs(duo, {"#max-steps": "24"})
    duo.find_element("#max-run").click()
    duo.wait_for_contains_text("#max-status", "computed and cached in the run", timeout=120)
    wait_images(duo, "#max-view", 1)
    seen = duo.driver.execute_script("return window.visSeen")
    steps = [s for s in seen["status"] if re.fullmatch(r"unit 3: step \d+/24 · activation -?[0-9.e+-]+", s)]
    assert steps, seen["status"]                                   # step n/N and the activation, live
    assert seen["preview"] and all(p.startswith("data:image/png;base64,") for p in seen["preview"])
    record = json.loads(target.with_suffix(".json").read_text())
    assert record["settings"]["steps"] == 24
    assert duo.find_element("#max-status").text.endswith(f"activation {record['activation_final']:.4g}")
    duo.wait_for_text_to_equal("#max-run", "recompute optimised image")
    first_src = duo.find_element("#max-view").get_attribute("src")

    set_inputs(duo, {"#max-steps": "8"})                           # recompute overwrites the run's image
    duo.find_element("#max-run").click()
    end = time.time() + 120
    while duo.find_element("#max-view").get_attribute("src") == first_src and time.time() < end:
        time.sleep(0.2)
    wait_images(duo, "#max-view", 1)
    assert json.loads(target.with_suffix(".json").read_text())["settings"]["steps"] == 8

    duo.driver.refresh()                       # now it comes from the run, and is the unit's grid tile
    duo.wait_for_text_to_equal("#max-status", "cached in the run", timeout=20)
    duo.wait_for_text_to_equal("#max-run", "recompute optimised image")
    wait_images(duo, "#grid-sprite", 1)
    sprite = duo.find_element("#grid-sprite").get_attribute("src")
    tile = sprite_tile(duo.app.server.test_client().get(sprite[sprite.index("/vis/"):]).data, 3)
    expected = np.asarray(Image.open(target).convert("RGB").resize(tile.size, Image.Resampling.BILINEAR))
    assert np.abs(np.asarray(tile).astype(int) - expected).max() <= 1
    from vistoolbox.mining.gallery import count_maximized

    made = count_maximized(run, layer)
    assert made >= 1 and duo.find_element("#layer-info").text.endswith(f" · {made} optimised")

    # the grid can show the top-1 patches instead: unit 3's tile is then its top-1 patch
    duo.find_element("#grid-shows input[value='patch']").click()
    end = time.time() + 30                     # the grid is re-rendered: read the src in one script call
    while attributes(duo, "#grid-sprite", "src") in ([sprite], []) and time.time() < end:
        time.sleep(0.2)
    wait_images(duo, "#grid-sprite", 1)
    (patches,) = attributes(duo, "#grid-sprite", "src")
    tile = sprite_tile(duo.app.server.test_client().get(patches[patches.index("/vis/"):]).data, 3)
    top1 = Image.open(run.patch(run.resolve(layer), 3, 0)).convert("RGB")
    resample = Image.Resampling.NEAREST if max(top1.size) < tile.size[0] else Image.Resampling.BILINEAR
    expected = np.asarray(top1.resize(tile.size, resample))
    assert np.abs(np.asarray(tile).astype(int) - expected).max() <= 1


def sprite_tile(png: bytes, unit: int):  # noqa: ANN201
    from vistoolbox.dashboard.units import GRID_COLUMNS, THUMB

    row, col = divmod(unit, GRID_COLUMNS)
    return Image.open(io.BytesIO(png)).convert("RGB").crop((col * THUMB, row * THUMB, (col + 1) * THUMB,
                                                            (row + 1) * THUMB))


def test_jobs_in_two_sessions_do_not_block_each_other_and_can_be_cancelled(duo):
    run = duo.app.vis_context.runs[0]
    driver = duo.driver
    driver.get(duo.server_url + "/")
    first = driver.current_window_handle
    duo.wait_for_element("#tab-texture").click()
    duo.wait_for_element("#tex-thumbs img")
    set_inputs(duo, {"#tex-size": "64", "#tex-steps": "5000", "#tex-seed": "7"})
    duo.find_element("#tex-run").click()
    duo.wait_for_contains_text("#tex-status", "step ", timeout=60)       # long job running, progress arriving

    driver.switch_to.new_window("window")                                 # a second browser session
    driver.get(f"{duo.server_url}/?layer={run.layers[1]}&unit=5")
    duo.wait_for_contains_text("#detail-title", "unit 5", timeout=20)     # the UI still answers
    wait_images(duo, "#top9 img", 9)
    duo.wait_for_element("#tab-texture").click()
    duo.wait_for_element("#tex-thumbs img")
    set_inputs(duo, {"#tex-size": "32", "#tex-steps": "5", "#tex-seed": "3"})
    duo.find_element("#tex-run").click()
    wait_images(duo, "#tex-result", 1, timeout=90)                        # finishes beside the long one
    driver.close()
    driver.switch_to.window(first)
    assert "done" not in duo.find_element("#tex-status").text             # the long job is still going

    duo.find_element("#tex-cancel").click()
    end = time.time() + 20
    while duo.find_element("#tex-run").get_attribute("disabled") and time.time() < end:
        time.sleep(0.2)
    assert not duo.find_element("#tex-run").get_attribute("disabled")
    step = int(duo.find_element("#tex-progress").get_attribute("value"))
    time.sleep(2)
    assert int(duo.find_element("#tex-progress").get_attribute("value")) == step < 5000   # stopped
    assert "done" not in duo.find_element("#tex-status").text
