"""High-bit-depth images decode to the picture they hold (16-bit grey and RGB, PNG and TIFF, float
TIFF), not to white: the CLI, mining and dashboard uploads all go through ``open_image``."""
from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vistoolbox.images import load_tensor, open_image


def write_png16(path: Path, array: np.ndarray) -> Path:
    """An independent 16-bit PNG encoder (Pillow cannot write 16-bit RGB): signature, IHDR with bit
    depth 16, one zlib IDAT of big-endian rows with filter 0, IEND."""
    data = np.asarray(array, dtype=">u2")
    data = data[..., None] if data.ndim == 2 else data
    height, width, channels = data.shape
    colour = {1: 0, 3: 2}[channels]
    raw = b"".join(b"\x00" + data[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """The astronaut at 16 bits (random low bytes, so 8-bit truncation and scaling differ) and its
    8-bit reference, round(v · 255 / 65535)."""
    from skimage import data

    rng = np.random.default_rng(0)
    rgb8 = data.astronaut()[:96, :128]
    rgb16 = rgb8.astype(np.uint16) * 256 + rng.integers(0, 256, rgb8.shape, dtype=np.uint16)
    grey16 = rgb16[..., 1]
    ref = lambda v: np.round(v.astype(np.float64) * 255 / 65535)  # noqa: E731
    return tmp_path_factory.mktemp("deep"), rgb16, grey16, ref(rgb16), ref(grey16)


def decoded(path: Path) -> np.ndarray:
    return np.asarray(open_image(path)).astype(np.float64)


def test_16_bit_grey_png_and_tiff(pictures):
    folder, _, grey16, _, grey_ref = pictures
    png = write_png16(folder / "grey16.png", grey16)
    tif = folder / "grey16.tif"
    Image.fromarray(grey16).save(tif)                       # Pillow writes I;16 TIFFs
    for path in (png, tif):
        image = decoded(path)
        assert image.shape == (*grey16.shape, 3)
        assert np.abs(image - grey_ref[..., None]).max() <= 0, path.name   # exact, and not white
        assert abs(image.mean() - grey_ref.mean()) < 0.01 and image.std() > 50


def test_16_bit_rgb_png_and_tiff(pictures):
    folder, rgb16, _, rgb_ref, _ = pictures
    png = write_png16(folder / "rgb16.png", rgb16)
    paths = [png]
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(folder / "rgb16.tif", rgb16, photometric="rgb")
    paths.append(folder / "rgb16.tif")
    for path in paths:
        image = decoded(path)
        assert image.shape == rgb16.shape
        # Pillow reduces 16-bit RGB to 8 bits itself (by its high byte): within one level of the reference
        assert np.abs(image - rgb_ref).max() <= 1, path.name
        assert abs(image.mean() - rgb_ref.mean()) < 0.6


def test_float_tiff_and_tensor(pictures):
    folder, _, grey16, _, grey_ref = pictures
    tif = folder / "grey32f.tif"
    Image.fromarray((grey16 / 65535).astype(np.float32)).save(tif)   # mode F, 0–1
    assert np.abs(decoded(tif) - grey_ref[..., None]).max() <= 1
    tensor = load_tensor(write_png16(folder / "g.png", grey16))
    assert tensor.shape == (1, 3, *grey16.shape) and abs(float(tensor.mean()) * 255 - grey_ref.mean()) < 0.01


def test_16_bit_upload_is_decoded_like_a_file(pictures):
    from vistoolbox.dashboard.uploads import decode_upload

    folder, _, grey16, _, grey_ref = pictures
    data = write_png16(folder / "up.png", grey16).read_bytes()
    image = decode_upload("data:image/png;base64," + base64.b64encode(data).decode(), 8 * 2**20, 25_000_000)
    assert np.abs(np.asarray(image).astype(np.float64) - grey_ref[..., None]).max() <= 0


def test_mining_sees_a_16_bit_image_as_its_picture(pictures, alexnet_random, tmp_path):
    """The same picture at 8 and 16 bits gets the same top-1 activation (the old decoder made it white)."""
    from vistoolbox import mine, open_run

    folder, _, grey16, _, grey_ref = pictures
    data = tmp_path / "data"
    data.mkdir()
    write_png16(data / "a16.png", grey16)
    Image.fromarray(grey_ref.astype(np.uint8)).save(data / "b8.png")
    run = open_run(mine(alexnet_random, data, tmp_path / "run", layers=["conv1"], k=2, patches=False, quiet=True))
    top = run.topk("conv1")["values"]
    assert run.manifest["counts"]["seen"] == 2
    np.testing.assert_allclose(top[:, 0], top[:, 1], rtol=1e-5, atol=1e-5)   # identical pixels, equal values
