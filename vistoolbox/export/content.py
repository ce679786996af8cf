"""What the site shows, read from a run through :mod:`vistoolbox.rundir`: one :class:`LayerContent`
per exported layer with a :class:`UnitContent` per unit, and the run files each page needs.

Every file taken from the run or its dataset is checked first: a run is data, and a symlink or a
``..`` in it must not pull a file from elsewhere into a published site.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VisError
from ..features.views import MODES
from ..images import image_size
from ..mining.gallery import Histogram, histogram_bins, source_hit
from ..rundir import Run, layer_dir, patch_name
from ..runfiles import inside

__all__ = ["BROWSER_IMAGES", "Hit", "LayerContent", "RunContent", "SourceImage", "UnitContent", "collect_layer",
           "collect_run", "regular_file", "slug"]

#: image types every browser decodes; other dataset images are converted to PNG for the site
BROWSER_IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")

#: (left, top, width, height) in percent of the source image
Percent = tuple[float, float, float, float]


def slug(name: str) -> str:
    """A folder name for `name` that is safe in a URL and on any file system: the name itself when it
    is plain (``features.28``, ``conv5_3``), else its safe characters plus a short hash (distinct names
    never share a slug). Slugs never start with ``_`` (the site's own folders do)."""
    if _SAFE.fullmatch(name) and not name.endswith(".html") and name not in {".", ".."}:
        return name
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:40] or "x"
    return f"{plain}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def regular_file(path: Path) -> os.stat_result | None:
    """The stat of `path` when it is a regular file that is not a symlink, else None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


@dataclass(frozen=True)
class SourceImage:
    """A dataset image the site shows: its file, its name inside the dataset, its (w, h) as displayed
    (EXIF orientation applied) and whether it must be converted (not a browser image type)."""

    index: int
    path: Path
    name: str
    size: tuple[int, int]
    convert: bool

    @property
    def site_name(self) -> str:
        return f"{self.index:06d}{'.png' if self.convert else self.path.suffix.lower()}"


@dataclass(frozen=True)
class Hit:
    """One top-k entry of a unit."""

    rank: int
    value: float
    image: SourceImage | None
    patch: Path | None
    views: dict[str, Path]
    crop: Percent | None
    field: Percent | None


@dataclass
class UnitContent:
    unit: int
    hits: list[Hit]
    maximized: Path | None
    record: dict[str, Any] | None
    histogram: Histogram | None


@dataclass
class LayerContent:
    name: str
    slug: str
    aliases: list[str]
    info: dict[str, Any]
    units: list[UnitContent]
    thumbs: list[Path | None]

    @property
    def title(self) -> str:
        """``conv5 · conv5_3 · features.28``."""
        return " · ".join([*self.aliases, self.name])


@dataclass
class RunContent:
    run: Run
    slug: str
    layers: list[LayerContent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Sources:
    """Dataset images by index, each checked once by the run's gate (:meth:`Run.image_path`: a
    regular file inside a dataset root the user gave or the run holds)."""

    def __init__(self, run: Run):
        self.run = run
        self.problem = run.dataset_problem
        self.found: dict[int, SourceImage | None] = {}

    def __call__(self, index: int) -> SourceImage | None:
        if index not in self.found:
            self.found[index] = self._find(index)
        return self.found[index]

    def _find(self, index: int) -> SourceImage | None:
        if self.problem or not 0 <= index < len(self.run.images):
            return None
        name = str(self.run.images[index])
        try:
            path = self.run.image_path(index)
            size = image_size(path)
        except (VisError, OSError):  # outside the dataset, not a plain file, unreadable: shown as missing
            return None
        return SourceImage(index, path, name, size, path.suffix.lower() not in BROWSER_IMAGES)


def _percent(rect: tuple[float, float, float, float], size: tuple[int, int]) -> Percent:
    left, top, right, bottom = rect
    width, height = size
    return (100 * left / width, 100 * top / height, 100 * (right - left) / width, 100 * (bottom - top) / height)


class _Folder:
    """The regular files (no symlinks) of a run folder that lies inside the run, listed once."""

    def __init__(self, folder: Path, root: Path):
        self.folder = folder
        self.names: set[str] = set()
        if folder.is_dir() and inside(folder, root):
            with os.scandir(folder) as entries:
                self.names = {e.name for e in entries if e.is_file(follow_symlinks=False)}

    def get(self, name: str) -> Path | None:
        return self.folder / name if name in self.names else None


def collect_layer(run: Run, layer: str, layer_slug: str, sources: "_Sources") -> LayerContent:
    """Everything the pages of one layer show (files that are missing or not plain files are left out)."""
    topk, stats = run.topk(layer), run.stats(layer)
    patches = _Folder(layer_dir(run.root, layer) / "patches", run.root)
    maximize = _Folder(run.maximized(layer, 0).parent, run.root)
    units = []
    thumbs = []
    for unit in range(run.units(layer)):
        hits = []
        for rank in range(topk["values"].shape[1]):
            index = int(topk["image_index"][unit, rank])
            if index < 0:
                continue
            image = sources(index)
            crop = field_box = None
            if image is not None:
                hit = source_hit(run, layer, int(topk["y"][unit, rank]), int(topk["x"][unit, rank]), image.size)
                crop = _percent(hit.crop, image.size)
                field_box = _percent(hit.field, image.size) if hit.field is not None else None
            views = {mode: p for mode in MODES if (p := patches.get(patch_name(unit, rank, mode))) is not None}
            hits.append(Hit(rank, float(topk["values"][unit, rank]), image, patches.get(patch_name(unit, rank)),
                            views, crop, field_box))
        maximized = maximize.get(run.maximized(layer, unit).name)
        record = run.maximized_record(layer, unit) if maximized is not None else None
        try:
            histogram = histogram_bins(run, layer, unit, stats=stats)
        except (KeyError, IndexError):
            histogram = None
        units.append(UnitContent(unit, hits, maximized, record, histogram))
        montage = patches.get(patch_name(unit))
        thumbs.append(maximized or (hits[0].patch if hits and hits[0].rank == 0 else None) or montage)
    return LayerContent(layer, layer_slug, run.aliases(layer), run.layer_info(layer), units, thumbs)


def _safe_layer(run: Run, layer: str) -> bool:
    """A layer whose folder is a plain child of ``RUN/layers`` (no ``/``, ``..`` or link leading out)."""
    folder = layer_dir(run.root, layer)
    base = (run.root / "layers").resolve()
    return ("/" not in layer and "\\" not in layer and "\x00" not in layer and layer not in {"", ".", ".."}
            and inside(folder, base) and folder.resolve().parent == base)


def collect_run(run: Run, run_slug: str, layers: list[str]) -> RunContent:
    """The content of `layers` (canonical names) of a run; layers whose name is not a plain folder
    name or whose arrays cannot be read are listed in ``skipped``."""
    content = RunContent(run, run_slug)
    sources = _Sources(run)
    if sources.problem:
        content.skipped.append(f"its source images ({sources.problem})")
    used: set[str] = set()
    for layer in layers:
        if not _safe_layer(run, layer):
            content.skipped.append(layer)
            continue
        name = slug(layer)
        while name in used:
            name = slug(name + "'")
        used.add(name)
        try:
            content.layers.append(collect_layer(run, layer, name, sources))
        except (OSError, KeyError, ValueError, VisError) as exc:  # a damaged layer is left out, not the whole site
            content.skipped.append(f"{layer} ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})")
    return content
