"""Dashboard callbacks and helpers without a browser: uploads, file serving, unit navigation,
Live-tab activations against an independent conv, montage geometry."""
from __future__ import annotations

import base64
import io
import os
import shutil
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vistoolbox.dashboard import live, units
from vistoolbox.dashboard.context import make_context
from vistoolbox.dashboard.serving import inside
from vistoolbox.dashboard.uploads import decode_upload
from vistoolbox.errors import VisUsageError
from vistoolbox.images import load_tensor


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- uploads

def test_upload_decodes_a_real_image(astronaut):
    img = Image.fromarray((astronaut[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    out = decode_upload(data_url(png(img)), 8 * 2**20, 25_000_000)
    assert out.size == (512, 512) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(img))


@pytest.mark.parametrize("contents, message", [
    (data_url(b"not an image at all" * 10, "image/png"), "not an image"),
    (data_url(b"\x80\x04\x95pickle", "application/octet-stream"), "not an image"),
    ("data:image/png;base64,%%%notbase64", "not valid base64"),
    ("hello", "not a file"),
])
def test_upload_rejects_non_images_with_a_message(contents, message):
    with pytest.raises(VisUsageError, match=message):
        decode_upload(contents, 8 * 2**20, 25_000_000)


def test_upload_size_cap():
    data = png(Image.new("RGB", (64, 64)))
    with pytest.raises(VisUsageError, match="larger than the limit of 0 MiB"):
        decode_upload(data_url(data), len(data) - 1, 25_000_000)
    assert decode_upload(data_url(data), len(data), 25_000_000).size == (64, 64)


@pytest.mark.parametrize("side", [8000, 14000])    # above our limit; above Pillow's own bomb guard too
def test_upload_decompression_bomb_is_refused_before_decoding_and_named(side):
    bomb = png(Image.new("1", (side, side)))           # 64 or 196 Mpx that compress to a few kB
    assert len(bomb) < 200_000
    with pytest.raises(VisUsageError) as refused:
        decode_upload(data_url(bomb), 8 * 2**20, 25_000_000)
    message = str(refused.value)
    assert f"a decompression bomb ({side * side:,} pixels" in message.replace(f"{side}x{side} = ", ""), message
    assert "not an image" not in message and "max" not in message.replace("more than", ""), message


def test_upload_with_too_many_pixels_names_no_flag_the_dashboard_lacks():
    rng = np.random.default_rng(0)
    noise = png(Image.fromarray(rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)))   # a photo-like 1 px/3 B
    with pytest.raises(VisUsageError) as refused:
        decode_upload(data_url(noise), 8 * 2**20, 10_000)
    assert str(refused.value) == ("the upload is 150x120 = 18,000 pixels, more than this dashboard accepts "
                                  "(10,000 pixels); upload a smaller image")


# --------------------------------------------------------------------------- file serving

def test_inside_refuses_traversal_absolute_and_symlinks(tmp_path):
    root = tmp_path / "run"
    (root / "layers").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "layers" / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    (root / "manifest.json").write_text("{}")
    os.symlink(tmp_path / "secret.png", root / "layers" / "link.png")
    assert inside(root, "layers/a.png") == (root / "layers" / "a.png").resolve()
    for bad in ("../secret.png", "layers/../../secret.png", str(tmp_path / "secret.png"), "/etc/passwd",
                "layers/link.png", "manifest.json", "layers", "", "layers/a.png\x00"):
        assert inside(root, bad) is None, bad


# --------------------------------------------------------------------------- navigation helpers

def test_arrow_keys_move_in_a_16_column_grid():
    assert units.step_unit(5, "ArrowRight", 256) == 6
    assert units.step_unit(5, "ArrowLeft", 256) == 4
    assert units.step_unit(5, "ArrowDown", 256) == 21
    assert units.step_unit(5, "ArrowUp", 256) == 0          # clamped at the first unit
    assert units.step_unit(250, "ArrowDown", 256) == 255    # clamped at the last unit
    assert units.step_unit(0, "ArrowLeft", 256) == 0
    assert units.step_unit(7, "Enter", 256) == 7


def test_query_round_trip():
    query = units.make_query(1, "features.3", 12, n_runs=2)
    assert query == "?run=1&layer=features.3&unit=12"
    assert units.parse_query(query) == {"run": "1", "layer": "features.3", "unit": "12"}
    assert units.make_query(0, "conv1", 3, n_runs=1) == "?layer=conv1&unit=3"
    assert units.parse_query("") == {}


# --------------------------------------------------------------------------- live tab

@pytest.fixture(scope="module")
def live_ctx(tmp_path_factory, alexnet_random):
    ctx = make_context(None, "alexnet", "random", cache_dir=tmp_path_factory.mktemp("dash-cache"))
    ctx._model = alexnet_random
    return ctx


def test_live_activations_match_an_independent_convolution(live_ctx, astronaut):
    from vistoolbox.dashboard.uploads import cache_image
    from vistoolbox.images import to_pil, to_tensor

    key, url = cache_image(live_ctx, to_pil(astronaut))
    assert url == f"/vis/cache/{key}.png"
    result = live.activations(live_ctx, key, "features.0")
    model = live_ctx.model
    conv = model.module.features[0]
    x = model.preprocessing.normalize(to_tensor(result["image"]))
    expected = F.conv2d(x, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)[0]
    assert result["maps"].shape == tuple(expected.shape) == (64, 55, 55)
    assert np.allclose(result["maps"], expected.numpy(), atol=1e-4)
    assert result["image"].size == (224, 224)
    probs = [p for _, p in result["classes"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    full = torch.softmax(model.module(x), 1)[0]
    assert abs(probs[0] - float(full.max())) < 1e-5


def test_live_layer_options_are_spatial_layers(live_ctx):
    options = live.live_layers(live_ctx.model)
    values = [o["value"] for o in options]
    assert "features.0" in values and "features.12" in values
    assert not any(v.startswith("classifier") for v in values)
    assert any("conv1" in o["label"] for o in options)


def test_montage_tiles_are_where_channel_at_says():
    channels, meta = 10, live.tile_layout(10, 5, 5)
    maps = np.stack([np.full((5, 5), float(c + 1)) for c in range(channels)])
    image = np.asarray(Image.open(io.BytesIO(live.montage_png(maps, meta, "layer"))).convert("L"), dtype=float)
    step = meta["tile"] + meta["pad"]
    found = {}
    for y in range(0, image.shape[0]):
        for x in range(0, image.shape[1]):
            c = live.channel_at(meta, x, y)
            if c is None:
                continue
            found.setdefault(c, set()).add(image[y, x])
    assert sorted(found) == list(range(channels))
    for c, values in found.items():   # every pixel of a tile has the channel's brightness (c+1)/10
        assert values == {round((c + 1) / channels * 255)} or values == {np.floor((c + 1) / channels * 255)}
    assert live.channel_at(meta, meta["tile"], 0) is None           # gutter
    assert live.channel_at(meta, 0, step * meta["nrows"]) is None   # below the last row


def test_live_tiles_get_their_own_contrast_and_hover_names_channel_and_max():
    """Per-channel contrast (the default): each tile spans black to white whatever its range; the
    hover grid over the montage names each tile's channel and maximum; the selection is outlined."""
    channels, meta = 7, live.tile_layout(7, 6, 6)
    gen = np.random.default_rng(0)
    maps = gen.normal(size=(channels, 6, 6)) * np.array([1e-3, 1, 10, 100, 1, 1, 1])[:, None, None]
    maps[4] = -1.0                                                   # never positive: stays black
    image = np.asarray(Image.open(io.BytesIO(live.montage_png(maps, meta))).convert("L"), dtype=float)
    step = meta["tile"] + meta["pad"]
    for c in range(channels):
        row, col = divmod(c, meta["ncols"])
        tile = image[row * step: row * step + meta["tile"], col * step: col * step + meta["tile"]]
        assert tile.max() == (0 if c == 4 else 255), c
        cell = np.maximum(maps[c], 0) / (maps[c].max() if c != 4 else 1) * 255
        shown = tile[:: meta["tile"] // 6, :: meta["tile"] // 6]   # nearest-neighbour upscaling: one pixel per cell
        assert np.abs(shown - cell.astype(np.uint8)).max() <= 1, c
    layered = np.asarray(Image.open(io.BytesIO(live.montage_png(maps, meta, "layer"))).convert("L"), dtype=float)
    assert layered[:meta["tile"], :meta["tile"]].max() < 10          # the 1e-3 channel is black on the layer's scale
    maxima = maps.reshape(channels, -1).max(1)
    fig = live.maps_figure(b"png", meta, maxima, selected=5)
    grid = fig.data[1]
    for c in range(meta["nrows"] * meta["ncols"]):
        row, col = divmod(c, meta["ncols"])
        if c < channels:
            assert grid.customdata[row][col][0] == c and grid.customdata[row][col][1] == pytest.approx(maxima[c])
            assert live.channel_at(meta, grid.x[col], grid.y[row]) == c     # the cell's centre is on its tile
        else:
            assert np.isnan(grid.z[row][col])                                # no channel: no hover
    assert "channel %{customdata[0]}" in grid.hovertemplate and "max %{customdata[1]" in grid.hovertemplate
    (shape,) = fig.layout.shapes
    row, col = divmod(5, meta["ncols"])
    assert shape.x0 < col * step < col * step + meta["tile"] - 1 < shape.x1
    assert shape.y0 < row * step < row * step + meta["tile"] - 1 < shape.y1
    assert live.clicked_channel(meta, {"x": 0, "y": 0, "customdata": [6, 1.0]}) == 6
    assert live.clicked_channel(meta, {"x": step + 1, "y": 1}) == 1


# --------------------------------------------------------------------------- on a real run (vis mine)

@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    from vistoolbox.dashboard import create_app
    from dashboard_browser import mine_run

    run_dir = mine_run(tmp_path_factory.mktemp("mined"))
    from vistoolbox import open_run

    data = open_run(run_dir).manifest["dataset"]["root"]   # the images the user mined: given, so they are shown
    app = create_app([run_dir], device="cpu", cache_dir=tmp_path_factory.mktemp("mined-cache"), datasets=[data])
    return app, app.vis_context


def test_run_files_are_served_only_from_inside_the_run(mined):
    app, ctx = mined
    run = ctx.runs[0]
    client = app.server.test_client()
    layer = run.layers[1]
    ok = client.get(f"/vis/run/0/layers/{layer}/patches/unit_0005_0.png")
    assert ok.status_code == 200 and ok.mimetype == "image/png"
    assert ok.data == run.patch(layer, 5, 0).read_bytes()
    secret = run.root.parent / "secret.png"
    Image.new("RGB", (2, 2)).save(secret)
    for bad in ("/vis/run/0/../secret.png", "/vis/run/0/%2e%2e/secret.png", "/vis/run/0/..%2fsecret.png",
                f"/vis/run/0/{secret}", f"/vis/run/0//{secret}", "/vis/run/0/manifest.json",
                "/vis/run/1/manifest.json", "/vis/run/0/layers/../../secret.png", "/vis/cache/..%2f..%2fsecret",
                "/vis/cache/not-hex.png"):
        response = client.get(bad, follow_redirects=True)
        # refused (404) or, for URLs no route of ours matches, Dash's own HTML page — never the file
        assert response.status_code == 404 or response.mimetype == "text/html", bad
        assert secret.read_bytes() not in response.data, bad


def test_url_selection_keys_and_clicks(mined):
    _, ctx = mined
    run = ctx.runs[0]
    first, second = run.layers
    alias = run.aliases(second)[-1]
    sel = units.select_from_trigger(ctx, "url", f"?layer={alias}&unit=40", None, None, None, None, "units")
    assert sel == {"run": 0, "layer": second, "unit": 40}
    assert units.select_from_trigger(ctx, "keys", "", 0, second, {"key": "ArrowUp"}, sel, "units")["unit"] == 24
    assert units.select_from_trigger(ctx, "keys", "", 0, second, {"key": "ArrowUp"}, sel, "live") is None
    moved = units.select_from_trigger(ctx, "layer-select", "", 0, first, None, sel, "units")
    assert moved == {"run": 0, "layer": first, "unit": 0}
    clicked = units.select_from_trigger(ctx, "grid-click", "", 0, second, None, sel, "units", {"unit": 300})
    assert clicked == {"run": 0, "layer": second, "unit": 255}
    bad = units.select_from_trigger(ctx, "url", "?layer=nope&unit=-4", None, None, None, None, "units")
    assert bad == {"run": 0, "layer": first, "unit": 0}


def test_unit_detail_lists_the_top9_in_order(mined):
    _, ctx = mined
    run = ctx.runs[0]
    layer = run.layers[1]
    title, srcs, captions, views, fig, max_src, status, source = units.unit_detail(ctx, 0, layer, 7)
    assert "unit 7" in title and len(srcs) == 9 and all(srcs)
    assert srcs == [f"/vis/run/0/layers/{layer}/patches/unit_0007_{r}.png" for r in range(9)]
    values = run.topk(layer)["values"][7]
    assert [float(c.split(": ")[1]) for c in captions] == pytest.approx(values[:9].tolist(), rel=5e-3)
    counts = run.stats(layer)["hist_counts"][7]
    assert sum(fig.data[0].y) == counts.sum() == run.manifest["counts"]["seen"]   # every image, one bin each
    assert max(fig.data[0].y) == counts.max()


def test_source_image_has_the_receptive_field_box(mined):
    """The red box drawn on the full source image frames the same pixels as the unit's patch that
    `vis mine` cut from the preprocessed image (compared after resampling; a shifted box does not)."""
    from vistoolbox.images import open_image
    from vistoolbox.features.receptive import field_of, unit_box

    _, ctx = mined
    run = ctx.runs[0]
    layer = run.layers[1]
    topk = run.topk(layer)
    info = run.layer_info(layer)
    field = field_of(info)
    checked = 0
    for unit in range(0, 64, 7):
        rank = 0
        crop = int(run.manifest["preprocessing"]["crop"])
        box = unit_box(field, int(topk["y"][unit, rank]), int(topk["x"][unit, rank]), (crop, crop))
        if box.bottom - box.top < 12 or box.right - box.left < 12:
            continue
        drawn = np.asarray(Image.open(units.source_with_box(ctx, 0, layer, unit, rank)).convert("RGB")).astype(int)
        original = open_image(run.image_path(int(topk["image_index"][unit, rank])))
        plain = np.asarray(original.resize((drawn.shape[1], drawn.shape[0]), Image.Resampling.BILINEAR)).astype(int)
        red = np.argwhere((drawn == [255, 40, 40]).all(-1) & (np.abs(drawn - plain).sum(-1) > 0))
        (t, l), (b, r) = red.min(0), red.max(0)
        inner = Image.fromarray(plain[t:b + 1, l:r + 1].astype(np.uint8))          # the box, undrawn
        patch = np.asarray(Image.open(run.patch(layer, unit, rank)).convert("RGB")).astype(int)
        patch = patch[box.pad_top:patch.shape[0] - box.pad_bottom, box.pad_left:patch.shape[1] - box.pad_right]
        size = (patch.shape[1], patch.shape[0])
        same = np.abs(np.asarray(inner.resize(size, Image.Resampling.BILINEAR)).astype(int) - patch).mean()
        shift = max(4, (r - l) // 2)
        moved = Image.fromarray(plain[t:b + 1, l + shift:r + 1 + shift].astype(np.uint8))
        other = np.abs(np.asarray(moved.resize(size, Image.Resampling.BILINEAR)).astype(int) - patch).mean()
        assert same < 12 and 2 * same < other, (unit, same, other)
        checked += 1
    assert checked >= 3


def test_jobs_are_cached_by_their_parameters(mined):
    """A texture job through the library: progress reaches the last step, the result file is
    written, and the same parameters again reuse it without running the work."""
    from vistoolbox.dashboard import jobs, texture

    _, ctx = mined
    key_in = jobs.resolve_pick(ctx, "sample:brick")
    params = {"images": {"keys": [key_in]}, "size": 32, "steps": 4, "seed": 0, "layers": ["relu1_1", "relu2_1"]}
    calls, progress = [], []

    def work(c, p, report):  # noqa: ANN001, ANN202
        calls.append(p)
        return texture.work(c, p, report)

    key, record = jobs.run_job(ctx, "texture", params, work, progress.append)
    assert len(calls) == 1 and progress[-1][:2] == ("4", "4") and record["status"] == "complete"
    assert Image.open(ctx.jobs_dir / f"{key}.png").size == (32, 32)
    again, _ = jobs.run_job(ctx, "texture", params, work, progress.append)
    assert again == key and len(calls) == 1
    other, _ = jobs.run_job(ctx, "texture", {**params, "seed": 1}, work, progress.append)
    assert other != key and len(calls) == 2


def test_blend_weights_are_parsed_and_checked():
    from vistoolbox.dashboard.transfer import parse_blend

    assert parse_blend("0.7, 0.3", 2) == [0.7, 0.3]
    assert parse_blend("  ", 3) is None
    with pytest.raises(VisUsageError, match="2 blend weights for 3 style images"):
        parse_blend("1,2", 3)
    with pytest.raises(VisUsageError, match="numbers separated by commas"):
        parse_blend("a,b", 2)


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    from vistoolbox.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["dashboard", "--run", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"vis: error: {str(tmp_path)!r} is not a vistoolbox run (no manifest.json); make one with `vis mine`"]


def test_without_a_run_the_units_tab_says_how_to_make_one(live_ctx):
    from vistoolbox.dashboard.units import layout

    text = str(layout(make_context(None, "alexnet", "random", cache_dir=live_ctx.cache_dir)).to_plotly_json())
    assert "vis mine --dataset FOLDER --out RUN" in text and "vis dashboard --run RUN" in text


def test_views_mined_with_the_run_are_shown(tmp_path, alexnet_random):
    """A run mined with views (``vis mine --with guided``'s library call; alexnet, random
    weights) shows those rows for a unit."""
    from vistoolbox.dashboard import create_app
    from dashboard_browser import write_dataset

    try:
        from vistoolbox import mine
    except ImportError:
        pytest.skip("mining (vistoolbox.mine) is not in this build yet")
    dataset = write_dataset(tmp_path / "images", count=9, longest=96)
    out = mine(alexnet_random, dataset, tmp_path / "run", layers=["conv1"], resize=72, crop=64,
               views="guided", quiet=True)
    app = create_app([out], cache_dir=tmp_path / "cache")
    ctx = app.vis_context
    _, srcs, _, views, *_ = units.unit_detail(ctx, 0, "features.0", 3)
    rows = {row.children[0].children: [img.src for img in row.children[1:]] for row in views}
    assert set(rows) == {"guided"}
    for view, sources in rows.items():
        assert sources == [f"/vis/run/0/layers/features.0/patches/unit_0003_{r}_{view}.png" for r in range(9)]
        assert all(app.server.test_client().get(src).status_code == 200 for src in sources)


def test_deep_link_names_and_problems(mined):
    """The address bar keeps the layer name the user typed; an unknown layer or unit is explained
    with the valid names."""
    _, ctx = mined
    run = ctx.runs[0]
    first, second = run.layers
    for typed in [second, *run.aliases(second)]:
        assert units.url_layer(run, second, typed) == typed
    assert units.url_layer(run, second, None) == run.short_name(second) == run.aliases(second)[0]
    assert units.url_layer(run, second, run.aliases(first)[0]) == run.short_name(second)   # another layer's name
    query = {"layer": "conv9", "unit": "7"}
    sel = units.resolve_selection(ctx, query)
    assert sel == {"run": 0, "layer": first, "unit": 7}
    message = units.selection_problems(ctx, query, sel)
    assert message.startswith("⚠ unknown layer 'conv9'; this run has ")
    assert f"{run.short_name(first)} ({first}), {run.short_name(second)} ({second})" in message
    assert message.endswith(f"showing {run.short_name(first)} unit 7") and "no unit" not in message
    assert units.selection_problems(ctx, {"layer": run.aliases(second)[-1], "unit": "07"},
                                    {"run": 0, "layer": second, "unit": 7}) == ""
    assert "there is no unit 'x'" in units.selection_problems(ctx, {"unit": "x"}, {"run": 0, "layer": first, "unit": 0})
    assert "there is no run '3'" in units.selection_problems(ctx, {"run": "3"}, {"run": 0, "layer": first, "unit": 0})


def test_small_receptive_fields_get_a_marker(mined):
    """conv1_1's 3-px field is a few pixels on the source image: the box stays exact and four arms
    (yellow on a dark halo) point at it from around it; a large field gets none."""
    _, ctx = mined
    run = ctx.runs[0]
    first, second = run.layers
    for unit in (0, 5, 9):
        drawn = np.asarray(Image.open(units.source_with_box(ctx, 0, first, unit, 0)).convert("RGB")).astype(int)
        red = np.argwhere((drawn == units.FIELD_COLOUR).all(-1))
        yellow = np.argwhere((drawn == units.MARKER_COLOUR).all(-1))
        size = units.marker_size(drawn.shape[1::-1])
        (t, l), (b, r) = red.min(0), red.max(0)
        assert b - t < size and r - l < size                          # the small box itself, exact
        assert len(yellow) > 4 * size                                  # four arms of `size` px
        centre = np.array([(t + b) / 2, (l + r) / 2])
        assert np.abs(yellow.mean(0) - centre).max() < 2.5           # centred on the box (unless clipped)
        assert np.ptp(yellow[:, 0]) >= b - t + 2 * size and np.ptp(yellow[:, 1]) >= r - l + 2 * size
        assert not np.isin(yellow[:, None], red[None]).all(-1).any()  # the arms never cover the box
    big = np.asarray(Image.open(units.source_with_box(ctx, 0, second, 5, 0)).convert("RGB")).astype(int)
    assert not (big == units.MARKER_COLOUR).all(-1).any()


def test_live_channel_clamp_and_classifier_panel(live_ctx):
    assert live.clamp_channel(7, 64, "conv1") == (7, "")
    assert live.clamp_channel(9999, 64, "conv1") == (
        63, "⚠ conv1 has no channel 9999 (its 64 channels are 0–63); showing channel 63")
    assert live.clamp_channel(-3, 64, "conv1")[0] == 0 and live.clamp_channel("x", 64, "conv1")[0] == 0
    with_classes = live.classes_panel(live_ctx.model, [("cat", 0.5)])      # alexnet: a classifier
    assert with_classes[0].children == "top-5 classes" and len(with_classes[1].children) == 1
    headless = type(live_ctx.model)(**{**live_ctx.model.__dict__, "has_classifier": False})
    text = str(live.classes_panel(headless, []))
    assert "has no classifier" in text and "--weights imagenet" in text


def test_cancelling_an_optimised_image_says_where_it_stopped(mined):
    """The Units tab's cancel note, through the app's real callback endpoint."""
    from test_dashboard_fast import call

    app, ctx = mined
    run = ctx.runs[0]
    sel = {"run": 0, "layer": run.layers[1], "unit": 7}
    assert not run.maximized(run.layers[1], 7).exists()
    inputs = {"max-cancel.n_clicks": 1, "selection.data": sel}
    states = {"max-progress.value": "23", "max-progress.max": "128"}
    status, data = call(app, [("max-note", "children")], inputs, "max-cancel.n_clicks", states)
    assert data["response"]["max-note"]["children"] == "unit 7: cancelled at step 23/128; nothing was saved"
    status, data = call(app, [("max-note", "children")], inputs, "selection.data", states)
    assert data["response"]["max-note"]["children"] == ""            # another unit: the note goes


def _post(client, output: str, outputs: list[dict], inputs: list[dict], changed: str, query: str = ""):  # noqa: ANN001
    body = {"output": output, "outputs": outputs, "inputs": inputs, "changedPropIds": [changed], "state": []}
    response = client.post("/_dash-update-component" + query, json=body)
    return response.status_code, (response.get_json() if response.data else None)


def test_views_of_any_unit_come_on_demand_through_the_real_endpoint(mined, tmp_path):
    """A unit mined without views: selecting it asks for them, a background job computes them (through
    Dash's real callback endpoint, polled as the browser polls) and caches them in the run — with this
    app's runs even when the process made another app since (Dash keys job functions by source)."""
    from urllib.parse import urlencode

    from vistoolbox.dashboard import create_app

    app, ctx = mined
    copy = shutil.copytree(ctx.runs[0].root, tmp_path / "copy")    # a later app in this process, on a copy:
    create_app([copy], device="cpu", cache_dir=tmp_path / "other")  # the views must still land in our run
    run = ctx.runs[0]
    layer, unit = run.layers[1], 11
    targets = [run.patch(layer, unit, rank, mode) for rank in range(9) for mode in ("deconv", "backprop", "guided")]
    assert not any(path.exists() for path in targets)
    sel = {"run": 0, "layer": layer, "unit": unit}
    request, status = units.select_views_request(ctx, sel)
    assert request["unit"] == unit and "computing" in status
    key = next(k for k in app.callback_map if "unit-views.children@" in k and "views-status.children@" in k)
    outputs = [{"id": part.split(".")[0], "property": part.split(".", 1)[1]} for part in key.strip(".").split("...")]
    inputs = [{"id": "views-request", "property": "data", "value": request}]
    client = app.server.test_client()
    code, handle = _post(client, key, outputs, inputs, "views-request.data")
    assert code == 200 and "cacheKey" in handle and "job" in handle
    deadline = time.time() + 240
    while True:
        code, data = _post(client, key, outputs, inputs, "views-request.data",
                           "?" + urlencode({"cacheKey": handle["cacheKey"], "job": handle["job"]}))
        if data and "response" in data:
            break
        assert time.time() < deadline, "the views job did not finish"
        time.sleep(0.5)
    rows, message = (data["response"][o["id"]][o["property"].split("@")[0]] for o in outputs)
    assert "cached in the run" in message
    assert [row["props"]["children"][0]["props"]["children"] for row in rows] == ["deconv", "backprop", "guided"]
    assert all(path.is_file() for path in targets)
    assert units.select_views_request(ctx, sel) == (None, "")     # next time they come from the run
    # the pictures are the library's: the unit's views cut to its field, contrast over the field
    from vistoolbox.features.views import unit_view_patches
    from vistoolbox.images import to_tensor, resize_center_crop, open_image

    index = int(run.topk(layer)["image_index"][unit, 0])
    pre = run.manifest["preprocessing"]
    image = to_tensor(resize_center_crop(open_image(run.image_path(index)), pre["resize"], pre["crop"]))
    want = unit_view_patches(ctx.model, image, layer, unit, int(run.topk(layer)["y"][unit, 0]),
                             int(run.topk(layer)["x"][unit, 0]), ["guided"])["guided"]
    got = torch.from_numpy(np.array(Image.open(run.patch(layer, unit, 0, "guided")))).permute(2, 0, 1).float() / 255
    assert (got - want).abs().max() <= 1 / 255 + 1e-6


def _post_body(app, body: dict, query: str = ""):  # noqa: ANN001, ANN202
    response = app.server.test_client().post(f"/_dash-update-component{query}", json=body)
    assert response.status_code in (200, 204), response.get_data(as_text=True)[-2000:]
    return response.status_code, (response.get_json() if response.status_code == 200 else None)


def _run_background(app, body: dict, timeout_s: float = 240) -> dict:  # noqa: ANN001
    """A background callback through the real endpoint: the first POST starts the job and returns
    its signed handles; the same POST with them polls until the outputs arrive."""
    import time
    from urllib.parse import urlencode

    status, started = _post_body(app, body)
    assert status == 200 and "job" in started, started
    query = "?" + urlencode({"cacheKey": started["cacheKey"], "job": started["job"]})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, data = _post_body(app, body, query)
        if status == 200 and data and "response" in data:
            return data["response"]
        time.sleep(0.5)
    raise AssertionError("the background job did not finish")


def _centre_activation(model, layer: str, unit: int, image: torch.Tensor) -> float:  # noqa: ANN001
    """The unit's centre activation by a plain forward hook on the torch module (the reference)."""
    got = {}
    module = dict(model.module.named_modules())[model.resolve(layer)]
    handle = module.register_forward_hook(lambda _m, _i, out: got.setdefault("out", out))
    mean = torch.tensor(model.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocessing.std).view(1, 3, 1, 1)
    try:
        with torch.no_grad():
            model.module((image - mean) / std)
    finally:
        handle.remove()
    out = got["out"][0, unit]
    return float(out[out.shape[0] // 2, out.shape[1] // 2])


def test_accentuate_button_under_a_patch_runs_a_job_and_caches_it_in_the_run(mined):
    """The Units tab's accentuate button, through the real callback endpoint (request, background
    job, cached second click); the result raises the unit's centre activation (a plain forward hook)
    over the patch it started from and stays close to it."""
    app, ctx = mined
    run, unit, rank = ctx.runs[0], 9, 2
    layer = run.layers[1]
    sel = {"run": 0, "layer": layer, "unit": unit}
    path = run.accentuated(layer, unit, rank)
    assert not path.exists()
    buttons = [{"id": {"type": "acc-run", "rank": r}, "property": "n_clicks", "value": int(r == rank)}
               for r in range(9)]
    status, data = _post_body(app, {
        "output": "acc-request.data", "outputs": {"id": "acc-request", "property": "data"},
        "inputs": [buttons], "changedPropIds": [f'{{"rank":{rank},"type":"acc-run"}}.n_clicks'],
        "state": [{"id": "selection", "property": "data", "value": sel}]})
    assert status == 200
    request = data["response"]["acc-request"]["data"]
    assert request == {**sel, "rank": rank, "click": 1}
    key = next(k for k in app.callback_map if "acc-status.children" in k and "acc-view.src" in k
               and app.callback_map[k]["inputs"][0]["id"] == "acc-request")  # ids carry allow_duplicate's hash
    view, status_out = key.strip(".").split("...")
    job = {"output": key, "outputs": [{"id": "acc-view", "property": view.split(".", 1)[1]},
                                      {"id": "acc-status", "property": status_out.split(".", 1)[1]}],
           "inputs": [{"id": "acc-request", "property": "data", "value": request}],
           "changedPropIds": ["acc-request.data"], "state": []}
    first = _run_background(app, job)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert first["acc-view"]["src"].startswith(f"/vis/run/0/layers/{path.parent.parent.name}/accentuate/")
    assert first["acc-status"]["children"].startswith(f"unit {unit}, patch #{rank + 1}: accentuated, cached")
    assert "plausibility" in first["acc-status"]["children"]
    model = ctx.model_for(run)
    seed = load_tensor(run.patch(layer, unit, rank))
    made = load_tensor(path)
    assert made.shape == seed.shape
    assert _centre_activation(model, layer, unit, made) > _centre_activation(model, layer, unit, seed)
    assert 0 < (made - seed).abs().mean() * 255 < 40  # moved, yet close to the patch
    stamp = path.stat().st_mtime_ns
    again = {**job, "inputs": [{"id": "acc-request", "property": "data", "value": {**request, "click": 2}}]}
    second = _run_background(app, again)  # a second click (the request store counts clicks)
    assert second["acc-status"]["children"].startswith(f"unit {unit}, patch #{rank + 1}: cached in the run")
    assert path.stat().st_mtime_ns == stamp


def test_context_errors_name_the_parameter_not_a_cli_flag(alexnet_random, astronaut, tmp_path):
    """make_context's messages name its parameters (`runs`, `stylizers_dir`); the CLI shows its flags."""
    from vistoolbox.cli import flag_names
    from vistoolbox.mining import mine

    (tmp_path / "photos").mkdir()
    for i in range(2):
        crop = astronaut[0, :, 100 * i:100 * i + 128, 150:278].permute(1, 2, 0).mul(255).byte().numpy()
        Image.fromarray(crop).save(tmp_path / "photos" / f"{i}.png")
    run = mine(alexnet_random, tmp_path / "photos", tmp_path / "run", layers=["conv1"], k=2, batch_size=2,
               patches=False, quiet=True)
    cases = [(dict(runs=[run, run]), "runs", "--run"),
             (dict(runs=None, stylizers_dir=tmp_path / "missing"), "stylizers_dir", "--stylizers")]
    for kwargs, param, flag in cases:
        with pytest.raises(VisUsageError) as error:
            make_context(model="alexnet", weights="random", cache_dir=tmp_path / "cache", **kwargs)
        assert "--" not in str(error.value) and param in error.value.params, str(error.value)
        assert flag in error.value.renamed(flag_names(["dashboard"]))


def test_texture_and_transfer_jobs_run_on_a_model_without_vgg_layer_names(tmp_path):
    """Issue 24 item 8: the tabs' jobs use the loaded model's own layers (alexnet: relu1…relu5)."""
    from torch import nn

    from vistoolbox.dashboard import create_app, jobs, texture, transfer

    ctx = create_app([], "alexnet", "random", device="cpu", cache_dir=tmp_path).vis_context
    relus = [f"features.{i}" for i, m in enumerate(ctx.model.module.features) if isinstance(m, nn.ReLU)]
    options, default = texture.layer_options(ctx.model)
    assert set(default) <= {o["value"] for o in options} and default
    brick, coffee = jobs.resolve_pick(ctx, "sample:brick"), jobs.resolve_pick(ctx, "sample:coffee")
    _, record = jobs.run_job(ctx, "texture", {"images": {"keys": [brick]}, "size": 96, "steps": 2, "seed": 0,
                                              "layers": []}, texture.work, lambda _: None)
    assert record["status"] == "complete" and list(record["loss"]["style_layers"]) == relus
    _, record = jobs.run_job(ctx, "transfer", {"content": {"keys": [coffee]}, "styles": {"keys": [brick]},
                                               "blend": None, "size": 96, "steps": 2, "style_weight": 1,
                                               "content_weight": 1.0, "preserve": "none"},
                             transfer.work, lambda _: None)
    assert record["status"] == "complete" and record["loss"]["content_layer"] == relus[3]
