"""MACO: phase-only images under a fixed natural magnitude spectrum, the spectrum cache, transparency."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vistoolbox.actmax import maximize, spectrum as spectrum_module
from vistoolbox.actmax.fourier import color_matrix, to_latent
from vistoolbox.actmax.params import PhaseImage
from vistoolbox.actmax.spectrum import natural_spectrum


@pytest.fixture()
def photos(tmp_path, astronaut):
    """Three real crops as PNG files, and a private spectrum cache."""
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = (astronaut[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    for i, (top, left) in enumerate([(0, 0), (100, 200), (300, 50)]):
        Image.fromarray(pixels[top:top + 160, left:left + 160]).save(folder / f"crop{i}.png")
    return folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(spectrum_module, "cache_dir", lambda: tmp_path / "cache")


@pytest.mark.parametrize("size", [(32, 32), (31, 24)])
def test_phase_only_image_keeps_the_magnitude_spectrum_exactly(photos, size):
    magnitude = natural_spectrum(photos, size).magnitude
    image = PhaseImage([torch.Generator().manual_seed(i) for i in range(2)], magnitude, size)
    optimizer = torch.optim.Adam(image.parameters(), lr=0.5)
    for _ in range(3):  # the phase moves, the magnitude must not
        optimizer.zero_grad()
        image().pow(2).mean().backward()
        optimizer.step()
    with torch.no_grad():
        latent = image.latent().double().numpy()
    got = np.abs(np.fft.rfft2(latent, norm="ortho"))  # numpy's FFT as the independent reference
    assert np.allclose(got, np.abs(magnitude.double().numpy())[None], rtol=1e-4, atol=1e-4)


def test_one_image_spectrum_with_its_own_phase_gives_the_image_back(photos, tmp_path):
    """A spectrum of one image, combined with that image's phase, reproduces the image (8-bit)."""
    single = tmp_path / "single"
    single.mkdir()
    (single / "crop1.png").write_bytes((photos / "crop1.png").read_bytes())
    spectrum = natural_spectrum(single, (160, 160))
    assert spectrum.images == 1
    original = torch.from_numpy(np.asarray(Image.open(single / "crop1.png"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    phase = torch.angle(torch.fft.rfft2(to_latent(original, color_matrix(True)), norm="ortho"))
    with torch.no_grad():
        back = PhaseImage([], spectrum.magnitude, (160, 160), phase=phase)()
    assert (back - original).abs().max() * 255 < 1.0


def test_spectrum_is_cached_under_its_fingerprint(photos, tmp_path):
    first = natural_spectrum(photos, (32, 32))
    assert len(list((tmp_path / "cache" / "spectra").glob("*.pt"))) == 1
    cached = natural_spectrum(photos, (32, 32))
    assert cached.fingerprint == first.fingerprint and torch.equal(cached.magnitude, first.magnitude)
    Image.new("RGB", (50, 50), (200, 10, 10)).save(photos / "red.png")  # the folder changed
    changed = natural_spectrum(photos, (32, 32))
    assert changed.fingerprint != first.fingerprint and changed.images == 4


def test_maco_writes_transparency_and_records_the_spectrum(alexnet_random, photos, tmp_path):
    res = maximize(alexnet_random, "conv4:3", preset="maco", steps=4, size=64, spectrum=str(photos), seed=0)
    assert res.record["spectrum"]["images"] == 3 and len(res.record["spectrum"]["fingerprint"]) == 64
    assert res.transparency is not None and res.transparency.shape == (1, 1, 64, 64)
    assert 0 <= float(res.transparency.min()) and float(res.transparency.max()) == 1.0
    out = res.save(tmp_path / "out" / "maco.png")[0]
    alpha = np.asarray(Image.open(out.with_name("maco_transparency.png")))
    assert alpha.shape == (64, 64, 3) and alpha.max() == 255
    assert json.loads(out.with_suffix(".json").read_text())["transparency"]["file"].endswith("_transparency.png")
