"""Writing a site incrementally: only files whose content changed are written, run images are hard
links (or verbatim copies across file systems), and files an earlier export wrote that are no longer
part of the site are removed. ``SITE/export.json`` lists what the export owns; a folder that holds
other files and no such list is never written into.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .._version import __version__
from ..errors import VisUsageError
from ..files import file_mode, is_temp_of, read_json, write_bytes, write_json
from .content import regular_file

__all__ = ["LEDGER", "Plan", "SiteFile", "WriteReport", "load_ledger", "plan_changes", "remove_temps", "write_site"]

LEDGER = "export.json"
LEDGER_FORMAT = 1


@dataclass(frozen=True)
class SiteFile:
    """One file of the site: `data` (made by the export) or `source` (a run or dataset file taken
    verbatim); `key` identifies the inputs of a made image so an unchanged one is not made again;
    `group` is what the size report adds it to (``run/layer``, ``run/images``, ``site``)."""

    rel: str
    size: int
    data: bytes | None = None
    source: Path | None = None
    key: str | None = None
    group: str = "site"


@dataclass
class Plan:
    """What a write would do: files to write, files already right, files to remove."""

    files: list[SiteFile]
    write: list[SiteFile] = field(default_factory=list)
    keep: list[SiteFile] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes of the whole site once written."""
        return sum(f.size for f in self.files)


@dataclass
class WriteReport:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    linked: int = 0
    copied: int = 0


def _safe_rel(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts and "\\" not in rel and "\x00" not in rel


def load_ledger(out: Path) -> dict[str, dict[str, Any]]:
    """The files an earlier export wrote into `out` (``{rel: {size, key}}``); an empty dict for a new
    or empty folder. A folder with other content and no ledger is refused (it is not ours to fill)."""
    ledger = out / LEDGER
    if not out.exists():
        return {}
    if not out.is_dir():
        raise VisUsageError(f"`out` {str(out)!r} is a file, not a folder")
    if not ledger.is_file():
        if any(out.iterdir()):
            raise VisUsageError(f"`out` {str(out)!r} is not empty and holds no earlier export ({LEDGER}); "
                                "give a new or empty folder")
        return {}
    try:
        record = read_json(ledger)
        files = record["files"]
        assert isinstance(files, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise VisUsageError(f"{str(ledger)!r} is damaged; remove the folder {str(out)!r} and export again") from None
    return {rel: dict(meta) if isinstance(meta, dict) else {} for rel, meta in files.items() if _safe_rel(rel)}


def _same(target: Path, item: SiteFile) -> bool:
    """True when `target` already holds what `item` would write."""
    info = regular_file(target)
    if info is None or info.st_size != item.size:
        return False
    if item.source is not None:
        src = os.stat(item.source)
        return (info.st_ino, info.st_dev) == (src.st_ino, src.st_dev) or info.st_mtime_ns == src.st_mtime_ns
    if item.data is not None:
        return target.read_bytes() == item.data
    return True   # a made image whose inputs did not change (same key, same size)


def plan_changes(out: Path, files: list[SiteFile], ledger: dict[str, dict[str, Any]]) -> Plan:
    """Compare the wanted `files` with what `out` holds."""
    plan = Plan(files)
    for item in files:
        (plan.keep if _same(out / item.rel, item) else plan.write).append(item)
    wanted = {f.rel for f in files}
    plan.remove = sorted(rel for rel in ledger if rel not in wanted and rel != LEDGER)
    return plan


def _place(item: SiteFile, target: Path) -> bool:
    """Hard-link (else copy, keeping the modification time) `item.source` onto `target`; True if linked.
    A new name is linked in place (a link appears whole); an existing one is replaced through a
    temporary name in the same folder."""
    source = item.source
    assert source is not None
    if not os.path.lexists(target):
        try:
            os.link(source, target, follow_symlinks=False)
            return True
        except FileExistsError:
            pass
        except OSError:   # another file system, or links not allowed: a verbatim copy
            pass
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")   # a temp name (files.is_temp_of)
    try:
        try:
            os.link(source, tmp, follow_symlinks=False)
            linked = True
        except OSError:
            shutil.copy2(source, tmp)
            os.chmod(tmp, file_mode())
            linked = False
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return linked


def _ledger(files: Iterable[SiteFile], status: str) -> dict[str, Any]:
    return {"format": LEDGER_FORMAT, "tool": "vistoolbox export", "version": __version__, "status": status,
            "files": {f.rel: {"size": f.size, "key": f.key} for f in sorted(files, key=lambda f: f.rel)}}


class _Folders:
    """Checks that a file's folder lies inside the site (each folder resolved once) and creates it."""

    def __init__(self, out: Path):
        self.root = out.resolve()
        self.seen: dict[Path, bool] = {}

    def ready(self, target: Path) -> bool:
        folder = target.parent
        if folder not in self.seen:
            self.seen[folder] = folder.resolve().is_relative_to(self.root)   # before anything is created
            if self.seen[folder]:
                folder.mkdir(parents=True, exist_ok=True)
        return self.seen[folder]


def write_site(out: Path, plan: Plan, ledger: dict[str, dict[str, Any]]) -> WriteReport:
    """Carry out `plan` in `out`. The ledger first lists old and new files (an interrupted export
    can be resumed and still cleans up), and at the end exactly the site's files."""
    report = WriteReport(kept=[f.rel for f in plan.keep])
    report.removed += remove_temps(out)
    if not plan.write and not plan.remove and (out / LEDGER).is_file():
        current = _ledger(plan.files, "complete")
        if read_json(out / LEDGER) == current:
            return report
    out.mkdir(parents=True, exist_ok=True)
    during = {rel: SiteFile(rel, int(meta.get("size") or 0), key=meta.get("key")) for rel, meta in ledger.items()}
    during.update({f.rel: f for f in plan.files})
    write_json(out / LEDGER, _ledger(during.values(), "writing"), indent=None)   # one line: fast to encode
    folders = _Folders(out)
    for item in plan.write:
        target = out / item.rel
        if not folders.ready(target):
            raise VisUsageError(f"{str(target)!r} would leave the site folder {str(out)!r} (a link inside it?)")
        if item.source is not None:
            if _place(item, target):
                report.linked += 1
            else:
                report.copied += 1
        else:
            write_bytes(target, item.data or b"")
        report.written.append(item.rel)
    for rel in plan.remove:
        target = out / rel
        if target.parent.resolve().is_relative_to(folders.root) and regular_file(target) is not None:
            target.unlink()
            report.removed.append(rel)
            _prune(out, target.parent)
    write_json(out / LEDGER, _ledger(plan.files, "complete"), indent=None)
    return report


def remove_temps(out: Path) -> list[str]:
    """Remove the temp files an export killed mid-write left in the site (``.NAME.<8>.tmp``: they are
    never part of the site, and a static host would publish them). Links are not followed."""
    removed = []
    if not (out / LEDGER).is_file():
        return removed   # not a site of ours (yet): nothing of ours to clean
    for folder, _, names in os.walk(out):
        for name in names:
            path = Path(folder) / name
            if is_temp_of(name) and regular_file(path) is not None:
                path.unlink(missing_ok=True)
                removed.append(path.relative_to(out).as_posix())
    return removed


def _prune(out: Path, folder: Path) -> None:
    """Remove `folder` and its parents up to `out` while they are empty."""
    root = out.resolve()
    folder = folder.resolve()
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
