"""Safe decoding of browser uploads: size cap, Pillow's bomb guard, images only, nothing unpickled."""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from PIL import Image

from vistoolbox.errors import VisUsageError
from vistoolbox.files import write_bytes
from vistoolbox.images import open_image, png_bytes, resize_longest

from .context import Context
from .serving import HEX_KEY, cache_url

__all__ = ["ALLOWED_FORMATS", "BOMB_PIXELS_PER_BYTE", "CACHE_BYTES", "CACHE_FILES", "cache_image", "cached_path",
           "decode_upload", "evict", "load_cached", "store_upload"]

ALLOWED_FORMATS = {"PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"}
#: Bounds of the upload cache (uploads and the run/sample images the pickers chose, ≤ 512 px PNGs):
#: beyond either, the least recently used images are removed (a picker that still names one says
#: "upload it again").
CACHE_FILES = 1000
CACHE_BYTES = 256 * 2**20


def decode_upload(contents: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """``data:<mime>;base64,<data>`` from ``dcc.Upload`` → RGB image, or a one-line VisUsageError."""
    if not isinstance(contents, str) or "," not in contents or not contents.startswith("data:"):
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
    if path.exists():
        _touch(path)
    else:
        write_bytes(path, data)
        evict(ctx.uploads, CACHE_FILES, CACHE_BYTES, keep=path)
    return key, cache_url(key)


def evict(folder: Path, max_files: int, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used PNGs of `folder` (oldest modification time first; a use
    touches a file) until at most `max_files` files of at most `max_bytes` in all are left; `keep`
    stays whatever its age → the files removed."""
    entries = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".png") and entry.is_file(follow_symlinks=False):
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:      # removed by another request meanwhile
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, Path(entry.path)))
    entries.sort(key=lambda e: e[0])
    files, total = len(entries), sum(size for _, size, _ in entries)
    removed = []
    for _, size, path in entries:
        if files <= max_files and total <= max_bytes:
            break
        if keep is not None and path == keep:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
        files, total = files - 1, total - size
    return removed


def _touch(path: Path) -> None:
    """Mark a cached image as just used (the cache evicts the least recently used first)."""
    try:
        os.utime(path)
    except OSError:   # evicted meanwhile, or a read-only cache: it is only an age
        pass


def cached_path(ctx: Context, key: str) -> Path:
    """The PNG stored by :func:`cache_image` (or a job) under `key`."""
    if not key or not HEX_KEY.match(key):
        raise VisUsageError("no image selected")
    for folder in (ctx.uploads, ctx.jobs_dir):
        path = folder / f"{key}.png"
        if path.is_file():
            _touch(path)
            return path
    raise VisUsageError("the image is no longer cached; upload it again")


def load_cached(ctx: Context, key: str) -> Image.Image:
    """An image stored by :func:`cache_image` (or a job) by its key."""
    return open_image(cached_path(ctx, key))
