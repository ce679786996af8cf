"""The position policy: inside fractions, eligibility masks, the manifest record and the identity check."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vistoolbox import load_model, open_run
from vistoolbox.cli import main
from vistoolbox.errors import VisUsageError
from vistoolbox.features.receptive import Field, inside_fraction
from vistoolbox.mining import mine
from vistoolbox.mining.positions import DEFAULT_MIN_INSIDE, check_min_inside, eligible_mask


def _share_by_counting(field: Field, shape: tuple[int, int], size: int) -> np.ndarray:
    """Share of each position's field on a size² image, by counting pixels on a padded canvas."""
    pad = max(field.size) + max(field.stride) * max(shape)
    canvas = np.zeros((size + 2 * pad, size + 2 * pad))
    canvas[pad:pad + size, pad:pad + size] = 1
    out = np.zeros(shape)
    for y in range(shape[0]):
        for x in range(shape[1]):
            r, c = pad + field.offset[0] + y * field.stride[0], pad + field.offset[1] + x * field.stride[1]
            out[y, x] = canvas[r:r + field.size[0], c:c + field.size[1]].mean()
    return out


@pytest.mark.parametrize("field, shape, size", [
    (Field((40, 40), (4, 4), (-18, -18)), (56, 56), 224),     # VGG16 conv3_3
    (Field((196, 196), (16, 16), (-90, -90)), (14, 14), 224),  # VGG16 conv5_3
    (Field((51, 35), (8, 4), (-18, -6)), (7, 15), 64),         # non-square field and stride
])
def test_inside_fraction_equals_pixel_counting(field, shape, size):
    np.testing.assert_allclose(inside_fraction(field, shape, (size, size)), _share_by_counting(field, shape, size),
                               atol=1e-12)


def _entry(field: Field, shape: tuple[int, int]) -> dict:
    return {"shape": [8, *shape], "rf_size": list(field.size), "rf_stride": list(field.stride),
            "rf_offset": list(field.offset)}


def test_eligible_mask_thresholds_and_fallback():
    conv5 = _entry(Field((196, 196), (16, 16), (-90, -90)), (14, 14))
    share = _share_by_counting(Field((196, 196), (16, 16), (-90, -90)), (14, 14), 224)
    for f in (0.3, 0.5, 0.75, 1.0):
        np.testing.assert_array_equal(eligible_mask(conv5, 224, f), share >= f - 1e-12)
    assert eligible_mask(conv5, 224, 1.0).sum() == 4        # only the central 2×2 lie wholly inside
    assert eligible_mask(conv5, 224, 0.0) is None            # every position
    assert eligible_mask(conv5, 224, 0.25) is None           # every field is ≥ 29 % inside: no mask
    # a field larger than the image: nothing reaches 0.75, the positions with the largest share count
    big = _entry(Field((100, 100), (10, 10), (-40, -40)), (7, 7))
    mask = eligible_mask(big, 60, 0.75)
    share = _share_by_counting(Field((100, 100), (10, 10), (-40, -40)), (7, 7), 60)
    assert share.max() < 0.75 and mask.sum() >= 1
    np.testing.assert_array_equal(mask, share == share.max())
    assert eligible_mask({"shape": [10], "rf_size": None}, 224, 1.0) is None          # fc layer
    assert eligible_mask({"shape": [8, 4, 4], "rf_size": None}, 224, 1.0) is None     # unknown geometry


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", None])
def test_min_inside_out_of_range_names_the_parameter(bad):
    with pytest.raises(VisUsageError, match="min_inside"):
        check_min_inside(bad)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("pos-images")
    for i, picture in enumerate([data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]):
        Image.fromarray(picture[:200, :200]).save(root / f"p{i}.png")
    return root


def test_policy_is_recorded_and_checked_on_resume(images, tmp_path):
    model = load_model("alexnet", "random", seed=0, input_size=64)
    kwargs = dict(layers=["conv2"], k=2, resize=72, crop=64, patches=False, quiet=True)
    run = mine(model, images, tmp_path / "run", min_inside=0.5, **kwargs)
    assert open_run(run).manifest["positions"] == {"min_inside": 0.5} and open_run(run).min_inside == 0.5
    with pytest.raises(VisUsageError, match="different positions"):
        mine(model, images, run, min_inside=1.0, **kwargs)
    assert mine(model, images, run, min_inside=0.5, **kwargs) == run        # the same run: left alone
    default = mine(model, images, tmp_path / "default", **kwargs)
    assert open_run(default).min_inside == DEFAULT_MIN_INSIDE
    # a run written before the policy existed means every position
    old = mine(model, images, tmp_path / "old", min_inside=0.0, **kwargs)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["positions"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert open_run(old).min_inside == 0.0
    assert mine(model, images, old, min_inside=0.0, **kwargs) == old
    with pytest.raises(VisUsageError, match="different positions"):
        mine(model, images, old, **kwargs)


def test_cli_min_inside_error_is_one_line(images, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["mine", "--model", "alexnet", "--weights", "random", "--dataset", str(images), "--out",
              str(tmp_path / "r"), "--min-inside", "1.5", "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--min-inside" in err and "1.5" in err
    with pytest.raises(SystemExit):
        main(["mine", "--help"])
    assert f"default {DEFAULT_MIN_INSIDE:g})" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


def test_eligible_mask_lies_over_the_layout_grid():
    """Channels-last maps and token grids get their mask over the positions mining reads; only exact
    fields decide (a bound from token mixing, global or unknown fields: every position)."""
    field = Field((40, 40), (8, 8), (-16, -16))
    share = _share_by_counting(field, (8, 8), 64)
    hwc = {"shape": [8, 8, 96], "layout": "HWC", "rf": "exact", "rf_size": [40, 40], "rf_stride": [8, 8],
           "rf_offset": [-16, -16]}
    np.testing.assert_array_equal(eligible_mask(hwc, 64, 0.9), share >= 0.9 - 1e-12)
    tokens = {**hwc, "shape": [65, 96], "layout": "NC:1+8x8"}
    np.testing.assert_array_equal(eligible_mask(tokens, 64, 0.9), share >= 0.9 - 1e-12)
    assert eligible_mask({**hwc, "rf": "bound"}, 64, 0.9) is None
    for kind in ("global", "unknown"):
        assert eligible_mask({**tokens, "rf": kind, "rf_size": None, "rf_stride": None, "rf_offset": None},
                             64, 0.9) is None
