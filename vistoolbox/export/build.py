"""``export_site``: runs → a static site (see :mod:`vistoolbox.export`)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import VisUsageError
from ..images import open_image, png_bytes
from ..limits import number
from ..mining.gallery import GRID_COLUMNS, THUMB, sprite_image
from ..rundir import Run, open_run
from .content import LayerContent, RunContent, collect_run, regular_file, slug
from .pages import LAYER_PAGE, SPRITE, index_page, layer_page, unit_page, unit_page_name
from .writer import SiteFile, load_ledger, plan_changes, write_site

__all__ = ["ExportReport", "MIB", "export_site", "site_files"]

MIB = 2**20
ASSETS = Path(__file__).parent / "assets"


@dataclass
class ExportReport:
    """What an export did: the site's `size` (bytes) and `files`, per group (``run/layer``,
    ``run/_images``, ``site``) as ``{group: [files, bytes]}``, and which files it wrote, kept or
    removed (relative paths); `linked`/`copied` count the run files placed by hard link / copy."""

    out: Path
    size: int
    files: int
    groups: dict[str, list[int]]
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    linked: int = 0
    copied: int = 0
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def _key(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


def _stamp(path: Path | None) -> object:
    info = regular_file(path) if path is not None else None
    return None if info is None else (str(path), info.st_size, info.st_mtime_ns)


class _Files:
    """Collects the site's files; made images whose key is unchanged since the last export are reused."""

    def __init__(self, out: Path, ledger: dict):
        self.out, self.ledger, self.items = out, ledger, []

    def data(self, rel: str, data: bytes, group: str = "site") -> None:
        self.items.append(SiteFile(rel, len(data), data=data, group=group))

    def text(self, rel: str, text: str, group: str = "site") -> None:
        self.data(rel, text.encode("utf-8"), group)

    def source(self, rel: str, path: Path, group: str) -> None:
        info = regular_file(path)
        if info is not None:
            self.items.append(SiteFile(rel, info.st_size, source=path, group=group))

    def made(self, rel: str, key: str, make: Callable[[], bytes], group: str) -> None:
        old = self.ledger.get(rel, {})
        info = regular_file(self.out / rel)
        if old.get("key") == key and info is not None and info.st_size == old.get("size"):
            self.items.append(SiteFile(rel, info.st_size, key=key, group=group))
        else:
            data = make()
            self.items.append(SiteFile(rel, len(data), data=data, key=key, group=group))


def _layer_files(files: _Files, title: str, content: RunContent, layer: LayerContent) -> None:
    base = f"{content.slug}/{layer.slug}"
    group = base
    files.text(f"{base}/{LAYER_PAGE}", layer_page(title, content, layer), group)
    thumbs = layer.thumbs
    files.made(f"{base}/{SPRITE}", _key("sprite", GRID_COLUMNS, THUMB, *map(_stamp, thumbs)),
               lambda: png_bytes(sprite_image(thumbs, GRID_COLUMNS, THUMB)), group)
    for unit in layer.units:
        files.text(f"{base}/{unit_page_name(unit.unit)}", unit_page(title, content, layer, unit), group)
        for hit in unit.hits:
            for path in (hit.patch, *hit.views.values()):
                if path is not None:
                    files.source(f"{base}/patches/{path.name}", path, group)
        if unit.maximized is not None:
            files.source(f"{base}/maximize/{unit.maximized.name}", unit.maximized, group)


def _image_files(files: _Files, content: RunContent) -> None:
    group = f"{content.slug}/_images"
    seen = {}
    for layer in content.layers:
        for unit in layer.units:
            for hit in unit.hits:
                if hit.image is not None:
                    seen[hit.image.index] = hit.image
    for index in sorted(seen):
        image = seen[index]
        rel = f"{content.slug}/_images/{image.site_name}"
        if image.convert:   # not a type browsers show (e.g. TIFF): the one place the export encodes a picture
            files.made(rel, _key("convert", *_stamp(image.path) or ()), lambda p=image.path: png_bytes(open_image(p)),
                       group)
        else:
            files.source(rel, image.path, group)


def _run_slugs(runs: Sequence[Run]) -> list[str]:
    slugs: list[str] = []
    for run in runs:
        name, n = slug(run.root.name), 2
        candidate = name
        while candidate in slugs:
            candidate, n = f"{name}-{n}", n + 1
        slugs.append(candidate)
    return slugs


def _choose_layers(runs: Sequence[Run], layers: Sequence[str] | None) -> list[list[str]]:
    """Per run, the canonical names to export (`layers` by name or alias; default every mined layer)."""
    if not layers:
        return [run.layers for run in runs]
    chosen: list[list[str]] = [[] for _ in runs]
    for name in layers:
        found = False
        for i, run in enumerate(runs):
            try:
                canonical = run.resolve(name)
            except VisUsageError:
                continue
            found = True
            if canonical not in chosen[i]:
                chosen[i].append(canonical)
        if not found:
            mined = sorted({layer for run in runs for layer in run.layers})
            raise VisUsageError(f"`layers`: {name!r} is in none of the runs; mined: {', '.join(mined)}")
    return chosen


def site_files(runs: Sequence[RunContent], title: str, out: Path, ledger: dict) -> list[SiteFile]:
    """Every file of the site (made pages and images, run and dataset files taken verbatim)."""
    files = _Files(out, ledger)
    for name in ("style.css", "site.js"):
        files.data(f"_site/{name}", (ASSETS / name).read_bytes())
    files.text("index.html", index_page(title, runs))
    for content in runs:
        for layer in content.layers:
            _layer_files(files, title, content, layer)
        _image_files(files, content)
    return files.items


def export_site(runs: Sequence[str | Path], out: str | Path, *, layers: Sequence[str] | None = None,
                title: str | None = None, max_mb: float | None = None, dry_run: bool = False,
                progress: Callable[[str], None] | None = None, datasets: Sequence[str | Path] = ()) -> ExportReport:
    """Write (or update) a static site of `runs` in `out` and return what it did.

    Args:
        runs: run directories (``vis mine``); each becomes a folder ``out/<run folder name>``.
        layers: names or aliases to export (default: every mined layer of every run).
        title: the site's title (default: the runs' models and folder names).
        max_mb: refuse, before writing anything, when the site would be larger (MiB).
        dry_run: plan and report only.
        progress: called with a line per step.
        datasets: folders whose images the site may publish: a run's source images are taken only from
            a dataset root inside the run or inside one of these (a run is data; its manifest alone
            cannot make the export publish a folder).
    """
    start = time.perf_counter()
    say = progress or (lambda message: None)
    if not runs:
        raise VisUsageError("`runs`: give at least one run directory")
    if max_mb is not None:
        max_mb = number(max_mb, "max_mb", positive=True)
    opened = [open_run(path, datasets) for path in runs]
    if len({run.root for run in opened}) != len(opened):
        raise VisUsageError("`runs`: the same run was given twice")
    out = Path(out)
    if any(out.resolve() == run.root or out.resolve().is_relative_to(run.root / "layers") for run in opened):
        raise VisUsageError(f"`out` {str(out)!r} is inside a run; give a folder of its own")
    ledger = load_ledger(out)
    chosen = _choose_layers(opened, layers)
    title = title or " · ".join(f"{run.manifest.get('model', '?')} ({run.root.name})" for run in opened)
    contents = []
    for run, run_slug, names in zip(opened, _run_slugs(opened), chosen):
        say(f"reading {run.root} ({len(names)} layer{'s' if len(names) != 1 else ''})")
        contents.append(collect_run(run, run_slug, names))
    say("making pages and sprites")
    files = site_files(contents, title, out, ledger)
    plan = plan_changes(out, files, ledger)
    groups: dict[str, list[int]] = {}
    for item in files:
        entry = groups.setdefault(item.group, [0, 0])
        entry[0] += 1
        entry[1] += item.size
    report = ExportReport(out, plan.size, len(files), groups, dry_run=dry_run,
                          skipped=[f"{c.slug}: {name}" for c in contents for name in c.skipped])
    if max_mb is not None and plan.size > max_mb * MIB:
        raise VisUsageError(f"the site would take {plan.size / MIB:.1f} MiB, above `max_mb` {max_mb:g}; "
                            "export fewer `layers` or raise the limit (nothing was written)")
    if dry_run:
        report.written = [f.rel for f in plan.write]
        report.kept = [f.rel for f in plan.keep]
        report.removed = plan.remove
    else:
        done = write_site(out, plan, ledger)
        report.written, report.kept, report.removed = done.written, done.kept, done.removed
        report.linked, report.copied = done.linked, done.copied
    report.seconds = time.perf_counter() - start
    return report
