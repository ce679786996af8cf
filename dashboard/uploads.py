"""Safe decoding of browser uploads: size cap, Pillow's bomb guard, images only, nothing unpickled."""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path

from PIL import Image

from vistoolbox.errors import VisUsageError
from vistoolbox.files import write_bytes
from vistoolbox.images import open_image, png_bytes, resize_longest

from .context import Context
from .serving import HEX_KEY, cache_url

__all__ = ["ALLOWED_FORMATS", "BOMB_PIXELS_PER_BYTE", "cache_image", "cached_path", "decode_upload", "load_cached", "store_upload"]

ALLOWED_FORMATS = {"PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"}


def decode_upload(contents: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """``data:<mime>;base64,<data>`` from ``dcc.Upload`` → RGB image, or a one-line VisUsageError."""
    if not contents or "," not in contents or not contents.startswith("data:"):
        raise VisUsageError("the upload is empty or not a file")
    header, payload = contents.split(",", 1)
    if ";base64" not in header:
        raise VisUsageError("the upload is not base64-encoded")
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise VisUsageError(f"the upload is larger than the limit of {max_bytes // 2**20} MiB")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise VisUsageError("the upload is not valid base64") from None
    if len(data) > max_bytes:
        raise VisUsageError(f"the upload is larger than the limit of {max_bytes // 2**20} MiB")
    _check_format(data, max_pixels)
    return open_image(data, max_pixels=max_pixels)


def _check_format(data: bytes, max_pixels: int) -> None:
    """Refuse, from the header alone, what is not an allowed image or has more than `max_pixels`."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt, (width, height) = probe.format, probe.size
    except Image.DecompressionBombError as exc:   # Pillow's own guard, far above ours
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise VisUsageError(_too_many(f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow "
                                      "decodes", len(data), max_pixels, bomb=True)) from None
    except (OSError, SyntaxError, ValueError):
        raise VisUsageError("the upload is not an image (PNG, JPEG, BMP, WebP, TIFF or GIF)") from None
    if fmt not in ALLOWED_FORMATS:
        raise VisUsageError(f"uploaded {fmt} images are not supported; use PNG, JPEG, BMP, WebP, TIFF or GIF")
    if width * height > max_pixels:
        raise VisUsageError(_too_many(f"{width}x{height} = {width * height:,} pixels", len(data), max_pixels,
                                      bomb=width * height > BOMB_PIXELS_PER_BYTE * len(data)))


#: Pixels per byte of file above which an oversized upload is called a decompression bomb (photos
#: take 0.1-10 px per byte; a bomb is a huge flat image squeezed into a few kB).
BOMB_PIXELS_PER_BYTE = 100


def _too_many(size: str, nbytes: int, max_pixels: int, bomb: bool) -> str:
    what = f"a decompression bomb ({size} in a {nbytes / 1024:,.0f} kB file)" if bomb else size
    return f"the upload is {what}, more than this dashboard accepts ({max_pixels:,} pixels); upload a smaller image"


def store_upload(ctx: Context, contents: str, longest: int = 512) -> tuple[str, str]:
    """Decode, shrink to `longest` px and cache an upload as PNG → ``(key, url)``."""
    return cache_image(ctx, decode_upload(contents, ctx.max_upload_bytes, ctx.max_upload_pixels), longest)


def cache_image(ctx: Context, image: Image.Image, longest: int = 512) -> tuple[str, str]:
    """Shrink to `longest` px and cache as PNG under its content hash → ``(key, url)``."""
    if max(image.size) > longest:
        image = resize_longest(image, longest)
    data = png_bytes(image)
    key = hashlib.sha256(data).hexdigest()[:32]
    path = ctx.uploads / f"{key}.png"
    if not path.exists():
        write_bytes(path, data)
    return key, cache_url(key)


def cached_path(ctx: Context, key: str) -> Path:
    """The PNG stored by :func:`cache_image` (or a job) under `key`."""
    if not key or not HEX_KEY.match(key):
        raise VisUsageError("no image selected")
    for folder in (ctx.uploads, ctx.jobs_dir):
        path = folder / f"{key}.png"
        if path.is_file():
            return path
    raise VisUsageError("the image is no longer cached; upload it again")


def load_cached(ctx: Context, key: str) -> Image.Image:
    """An image stored by :func:`cache_image` (or a job) by its key."""
    return open_image(cached_path(ctx, key))
