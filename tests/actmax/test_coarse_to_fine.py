"""Coarse-to-fine optimisation: carrying each parameterization to a larger canvas, the schedule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vistoolbox.actmax import maximize, settings_for
from vistoolbox.actmax.fourier import carry_spectrum, tile
from vistoolbox.actmax.params import FourierImage, PixelImage
from vistoolbox.actmax.presets import plan_stages
from vistoolbox.cli import main


def _upsampled(small: np.ndarray, new: tuple[int, int]) -> np.ndarray:
    h, w = small.shape
    spectrum = torch.fft.rfft2(torch.tensor(small), norm="ortho")
    factor = math.sqrt(new[0] * new[1] / (h * w))
    return torch.fft.irfft2(carry_spectrum(spectrum, (h, w), new) * factor, s=new, norm="ortho").numpy()


@pytest.mark.parametrize("old,new", [((8, 8), (16, 16)), ((7, 9), (12, 20)), ((8, 6), (11, 15))])
@pytest.mark.parametrize("ky,kx", [(0, 0), (1, 2), (3, 1), (-3, 2), (2, 0)])
def test_carried_spectrum_is_the_band_limited_upsampling(old, new, ky, kx):
    """Analytic reference: a sampled cosine (below Nyquist) carried to a larger grid is the same
    cosine sampled on the finer grid."""
    h, w = old
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    small = np.cos(2 * np.pi * (ky * y / h + kx * x / w) + 0.4)
    fy, fx = np.meshgrid(np.arange(new[0]) * h / new[0], np.arange(new[1]) * w / new[1], indexing="ij")
    assert np.allclose(_upsampled(small, new), np.cos(2 * np.pi * (ky * fy / h + kx * fx / w) + 0.4), atol=1e-9)


@pytest.mark.parametrize("old,ratio", [((8, 6), 2), ((8, 6), 3), ((9, 7), 2)])
def test_carried_spectrum_keeps_every_old_pixel_nyquist_included(old, ratio):
    """Any image (Nyquist rows and columns included): every ratio-th pixel of the upsampled image
    is the old pixel."""
    small = np.random.default_rng(0).normal(size=old)
    big = _upsampled(small, (old[0] * ratio, old[1] * ratio))
    assert np.allclose(big[::ratio, ::ratio], small, atol=1e-9)


def test_fourier_image_grows_to_the_same_picture():
    gens = [torch.Generator().manual_seed(3)]
    small = FourierImage(gens, (24, 24), sd=0.3)
    big = small.grow((48, 48))
    with torch.no_grad():
        a, b = small.latent(), big.latent()
    assert torch.allclose(b[..., ::2, ::2], a, atol=1e-5)  # every other pixel is an old pixel
    tiled = small.grow((56, 40), carry="tile")
    with torch.no_grad():
        assert torch.allclose(tiled.latent(), tile(a, (56, 40)), atol=1e-5)


def test_pixel_image_grows_by_bilinear_upsampling_or_tiling(alexnet_random):
    pre = alexnet_random.preprocessing
    start = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    img = PixelImage([], (10, 10), pre, init=start)
    grown = img.grow((20, 20))
    expected = torch.nn.functional.interpolate(start, size=(20, 20), mode="bilinear", align_corners=False)
    assert torch.allclose(grown(), expected, atol=1e-5)
    assert torch.allclose(img.grow((20, 30), carry="tile")(), start.repeat(1, 1, 2, 3)[..., :20, :30], atol=1e-5)


@pytest.mark.parametrize("steps,schedule,expected", [
    (100, ((0.5, 0.75), (1.0, 0.25)), [((112, 112), 75), ((224, 224), 25)]),
    (1, ((0.5, 0.75), (1.0, 0.25)), [((224, 224), 1)]),  # the final size always keeps a step
    (3, ((0.25, 0.5), (0.5, 0.25), (1.0, 0.25)), [((56, 56), 2), ((224, 224), 1)]),
    (10, ((1.0, 1.0),), [((224, 224), 10)]),
])
def test_plan_stages_splits_the_steps(steps, schedule, expected):
    assert plan_stages(settings_for("lucid", steps=steps, schedule=schedule), (224, 224)) == expected


def test_schedule_runs_each_stage_and_is_recorded(alexnet_random):
    res = maximize(alexnet_random, "conv4:0-1", steps=6, size=96, schedule="0.5:0.5,1:0.5", seed=1)
    assert res.record["stages"] == [[48, 48, 3], [96, 96, 3]]
    assert res.record["settings"]["schedule"] == [[0.5, 0.5], [1.0, 0.5]]
    assert res.images.shape == (2, 3, 96, 96) and len(res.record["history"]) == 6
    again = maximize(alexnet_random, "conv4:0-1", steps=6, size=96, schedule="0.5:0.5,1:0.5", seed=1)
    assert torch.equal(res.images, again.images)


@pytest.mark.parametrize("args,expected", [
    (["--schedule", "1:0.5,0.5:0.5"], "--schedule sizes must grow"),
    (["--schedule", "0.5:0.7,1:0.7"], "--schedule step fractions must be positive and add up to 1"),
    (["--schedule", "half"], "cannot read --schedule"),
])
def test_bad_schedule_is_one_line_exit_2(args, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["maximize", "--layer", "conv4", "--unit", "1", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
