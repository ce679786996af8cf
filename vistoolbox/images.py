"""Images: safe loading, resize/crop, tensor ↔ PIL, PNG writing and montages.

Tensors are RGB in 0–1, shaped ``[N, 3, H, W]`` (or ``[3, H, W]`` where stated); the model's
normalisation lives in :class:`~vistoolbox.models.Preprocessing`.
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .errors import VisUsageError
from .files import write_bytes
from .limits import MAX_DECODE_PIXELS

__all__ = ["DEFAULT_MAX_PIXELS", "HIGH_BIT_GREY", "IMAGE_SUFFIXES", "find_images", "fit_longest", "image_size", "load_tensor", "montage", "named",
           "normalize_visual",
           "open_image", "png_bytes", "resize_center_crop", "resize_longest", "resize_tensor", "save_png", "to_pil",
           "to_rgb8", "to_tensor"]

#: Refuse decoding images above this many pixels unless raised (Pillow's bomb guard stays on too).
DEFAULT_MAX_PIXELS = MAX_DECODE_PIXELS
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@contextlib.contextmanager
def _bomb_warning_off() -> Iterator[None]:
    """Pillow's DecompressionBombWarning silenced: the pixel limit checked here says it in one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def open_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file (or bytes) to RGB, applying EXIF orientation.

    Missing, unreadable and oversized images raise :class:`VisUsageError` with a one-line reason.
    """
    name = "uploaded image" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise VisUsageError(f"image {name!r} does not exist")
    try:
        with _bomb_warning_off(), Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            if img.width * img.height > max_pixels:
                advice = ("use a smaller image" if max_pixels >= DEFAULT_MAX_PIXELS   # no flag raises the default
                          else "raise `max_pixels` or use a smaller image")
                raise VisUsageError(f"image {name!r} has {img.width}x{img.height} pixels, above the limit of "
                                    f"{max_pixels:,}; {advice}")
            img = ImageOps.exif_transpose(img)
            return to_rgb8(img)
    except VisUsageError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise VisUsageError(f"cannot read {name!r} as an image: {exc}") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(w, h) of an image file as :func:`open_image` shows it (EXIF orientation applied), read from
    its header only; unreadable files raise :class:`VisUsageError`."""
    try:
        with _bomb_warning_off(), Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise VisUsageError(f"cannot read {str(path)!r} as an image: {exc}") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


#: Pillow modes of single-channel images deeper than 8 bits: 16-bit unsigned, 32-bit int, 32-bit float.
HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb8(image: Image.Image) -> Image.Image:
    """Any Pillow image → 8-bit RGB. Greys deeper than 8 bits are scaled, not clipped at 255:
    16-bit (``I;16``, and ``I`` within 0–65535) by 255/65535, floats (``F``) from 0–1, and other
    ranges from their own minimum–maximum. (Pillow already reduces 16-bit RGB to 8 bits.)"""
    if image.mode not in HIGH_BIT_GREY:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        low, high = 0.0, 65535.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    scaled = np.nan_to_num((values - low) / max(high - low, 1e-12), nan=0.0, posinf=1.0, neginf=0.0)
    grey = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def named(names: Sequence[object], shown: int = 3) -> str:
    """``2 images: a.png, b.png`` / ``40 images: a.png, b.png, c.png, …``: a count and the first few."""
    head = ", ".join(str(name) for name in list(names)[:shown])
    return f"{len(names)} image{'s' if len(names) != 1 else ''}: {head}{', …' if len(names) > shown else ''}"


def find_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix, see :data:`IMAGE_SUFFIXES`) under `folder`, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image → float RGB tensor ``[1, 3, H, W]`` in 0–1 (see :func:`to_rgb8` for deep greys)."""
    array = np.asarray(to_rgb8(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """0–1 tensor ``[3, H, W]`` or ``[1, 3, H, W]`` → PIL RGB (clamped, rounded)."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    array = (tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return Image.fromarray(array, "RGB")


def load_tensor(path: str | Path, size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Load an image as ``[1, 3, H, W]`` 0–1; with `size`, scale so the longest side is `size`."""
    image = open_image(path, max_pixels)
    if size:
        image = resize_longest(image, size)
    return to_tensor(image)


def fit_longest(size: tuple[int, int], longest: int, shrink_only: bool = False) -> tuple[int, int]:
    """A 2-D size (either order: (w, h) or (h, w)) scaled so its longest side is `longest`, aspect kept;
    with `shrink_only` a size that already fits is returned unchanged."""
    scale = longest / max(size)
    if shrink_only and scale >= 1:
        return (int(size[0]), int(size[1]))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def resize_longest(image: Image.Image, size: int) -> Image.Image:
    """Scale so the longest side is `size` (aspect kept)."""
    new = fit_longest(image.size, size)
    return image.resize(new, Image.Resampling.BICUBIC) if new != image.size else image


def resize_tensor(image: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Antialiased resize of a 0–1 batch ``[N, 3, H, W]`` to (H, W), clamped to 0–1."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)


def resize_center_crop(image: Image.Image, resize: int, crop: int) -> Image.Image:
    """Resize the shorter side to `resize`, then centre-crop `crop`×`crop` (torchvision's recipe).
    A resized image above :data:`DEFAULT_MAX_PIXELS` (a very long, thin one) is refused first."""
    scale = resize / min(image.size)
    new = (max(crop, round(image.width * scale)), max(crop, round(image.height * scale)))
    if new[0] * new[1] > DEFAULT_MAX_PIXELS:
        raise VisUsageError(f"a {image.width}x{image.height} image resized to {new[0]}x{new[1]} would have more "
                            f"than {DEFAULT_MAX_PIXELS:,} pixels; use a smaller `resize`")
    image = image.resize(new, Image.Resampling.BILINEAR)
    left, top = (image.width - crop) // 2, (image.height - crop) // 2
    return image.crop((left, top, left + crop, top + crop))


def png_bytes(image: Image.Image | torch.Tensor | np.ndarray, compress_level: int = 6) -> bytes:
    """PNG encoding (deterministic: no timestamps) of a PIL image, a 0–1 tensor or a uint8
    ``[3, H, W]`` array; ``compress_level=1`` trades size for speed where thousands are written."""
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=compress_level)
    return buf.getvalue()


def save_png(image: Image.Image | torch.Tensor, path: str | Path) -> Path:
    """Write a PNG atomically."""
    return write_bytes(path, png_bytes(image))


def montage(tiles: Sequence[torch.Tensor], ncols: int | None = None, pad: int = 2,
            fill: float = 1.0) -> torch.Tensor:
    """Tile ``[3, h, w]`` images (same size) into one ``[3, H, W]`` grid with `pad` px gutters."""
    if not tiles:
        raise ValueError("montage needs at least one tile")
    ncols = ncols or math.ceil(math.sqrt(len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    c, h, w = tiles[0].shape[-3:]
    out = torch.full((c, nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad), fill)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, ncols)
        out[:, r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = tile.reshape(c, h, w)
    return out


def normalize_visual(x: torch.Tensor, percentile: float = 99.5) -> torch.Tensor:
    """Map a signed map (e.g. a gradient ``[3, H, W]``) to 0–1 for display: centred at 0.5,
    scaled by the `percentile` of |x|."""
    scale = torch.quantile(x.abs().flatten().float(), percentile / 100).clamp_min(1e-12)
    return (x / (2 * scale) + 0.5).clamp(0, 1)
