"""The run directory: one stable on-disk format, written by mining and maximization, read by the
dashboard — this module is the one place that knows its layout.

::

    RUN/manifest.json              model, weights id + sha256, dataset root + fingerprint, preprocessing,
                                   layers (canonical → aliases), k, positions (the position policy:
                                   min_inside), versions, counts, status
    RUN/images.json                image paths (relative to the dataset root) in index order
    RUN/layers/<name>/topk.npz     values [U,k] float32 descending, image_index, y, x [U,k] int64
    RUN/layers/<name>/stats.npz    mean_max [U], frac_active [U], hist_edges, hist_counts [U,bins]
    RUN/layers/<name>/patches/unit_0012.png          3×3 montage of the top-9
    RUN/layers/<name>/patches/unit_0012_3.png        rank-3 patch (``_deconv``, ``_backprop``, ``_guided`` views)
    RUN/layers/<name>/maximize/unit_0012.png + .json the unit's optimised image and its record
    RUN/inputs/img_000123.png      image 123 as the model saw it (resized, cropped), stored once for every
                                   layer whose units see the whole image (fc): their hits refer to it
                                   instead of a patch file and montage per unit

``<name>`` is the canonical layer name printed by ``vis layers``. Every file is written atomically.
While a run is mined, ``RUN/checkpoint.npz`` holds the resumable state; a shard run also keeps
``RUN/shard_state.npz`` (the exact state ``vis merge`` joins).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._version import __version__
from .errors import VisRuntimeError, VisUsageError
from .files import is_temp_of, write_json, write_npz
from .runfiles import checked_file, damaged, inside, npz_members, plain_name, read_capped, relative_inside

__all__ = ["CHECKPOINT", "IDENTITY_KEYS", "MANIFEST", "Run", "SHARD_STATE", "accentuate_path", "check_network", "clear_run",
           "damaged", "identity_changes", "identity_of", "input_path", "layer_dir", "maximize_path", "open_run", "patch_name",
           "patch_path", "read_arrays",
           "read_images", "read_manifest", "short_name", "unit_stem", "versions", "write_images", "write_layer_arrays",
           "write_manifest",
           # training runs
           "RECORD_KINDS", "TRAINING_LOG", "TrainingLog", "TrainingLogWriter", "checkpoint_path", "epoch_checkpoints",
           "probe_path", "read_training_log", "training_log_path"]

MANIFEST = "manifest.json"
IMAGES = "images.json"
INPUTS = "inputs"
CHECKPOINT = "checkpoint.npz"
SHARD_STATE = "shard_state.npz"
#: The manifest fields that define a run: a run with different ones must not resume or merge into it.
IDENTITY_KEYS = ("model", "weights", "weights_sha256", "seed", "input_size", "preprocessing", "dataset", "k",
                 "layers", "positions", "shard")
#: What a manifest written before a field existed meant by its absence.
_ABSENT = {"positions": {"min_inside": 0.0}}


def unit_stem(unit: int) -> str:
    """``unit_0012`` — the file stem of a unit."""
    return f"unit_{unit:04d}"


def short_name(layer: str, aliases: Sequence[str]) -> str:
    """What people call a layer: its first alias (``conv1`` for VGG's ``features.2``), else its name."""
    return aliases[0] if aliases else layer


def layer_dir(run: str | Path, layer: str) -> Path:
    """``RUN/layers/<name>``."""
    return Path(run) / "layers" / layer


def patch_name(unit: int, rank: int | None = None, view: str = "") -> str:
    """``unit_0012_3_deconv.png``: the file name inside ``patches/`` of a montage (``rank=None``) or one
    patch; `view` is ``""``, ``deconv``, ``backprop`` or ``guided``."""
    return unit_stem(unit) + ("" if rank is None else f"_{rank}") + (f"_{view}" if view else "") + ".png"


def patch_path(run: str | Path, layer: str, unit: int, rank: int | None = None, view: str = "") -> Path:
    """Montage (``rank=None``) or one patch; `view` is ``""``, ``deconv``, ``backprop`` or ``guided``."""
    return layer_dir(run, layer) / "patches" / patch_name(unit, rank, view)


def input_path(run: str | Path, index: int) -> Path:
    """``RUN/inputs/img_000123.png``: dataset image `index` as the model saw it."""
    return Path(run) / INPUTS / f"img_{index:06d}.png"


def maximize_path(run: str | Path, layer: str, unit: int) -> Path:
    """Optimised image of a unit (its JSON record sits beside it with suffix .json)."""
    return layer_dir(run, layer) / "maximize" / f"{unit_stem(unit)}.png"


def accentuate_path(run: str | Path, layer: str, unit: int, rank: int) -> Path:
    """Feature accentuation of a unit's top-k patch `rank` (its JSON record beside it), as
    ``vis maximize --from-topk`` names it: ``layers/<name>/accentuate/unit_0012_rank3.png``."""
    return layer_dir(run, layer) / "accentuate" / f"{unit_stem(unit)}_rank{rank}.png"


# --------------------------------------------------------------------------- reading, checked
#: Manifest fields and the JSON types they must have when present (None is allowed too).
_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str, "weights": str, "weights_sha256": str, "status": str, "k": int, "input_size": int,
    "batch_size": int, "seed": int, "layers": dict, "dataset": dict, "preprocessing": dict, "counts": dict,
    "shard": dict, "views": list, "positions": dict}


def _manifest_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    for key, kind in _MANIFEST_TYPES.items():
        value = manifest.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{key!r} has the wrong type ({type(value).__name__})"
    for name, entry in (manifest.get("layers") or {}).items():
        if not plain_name(name):
            return f"layer {name[:80]!r} is not a plain folder name"
        if not isinstance(entry, dict) or not isinstance(entry.get("units", 0), int) or entry.get("units", 0) < 0:
            return f"layer {name!r} is not a layer entry"
    for key in ("k", "input_size"):
        if manifest.get(key) is not None and manifest[key] < 1:
            return f"{key!r} is {manifest[key]}, not a positive count"
    dataset = manifest.get("dataset") or {}
    if "root" in dataset and not isinstance(dataset["root"], str):
        return "'dataset.root' is not a path"
    shard = manifest.get("shard")
    if shard is not None and not (isinstance(shard.get("index"), int) and isinstance(shard.get("count"), int)):
        return "'shard' is not {index, count}"
    return None


def _read_json(path: str | Path, root: str | Path | None, kind: str) -> Any:
    """A JSON file of a run, through the gate (:func:`~vistoolbox.runfiles.checked_file`)."""
    return json.loads(read_capped(path, Path(path).parent if root is None else root, kind))


def read_manifest(path: str | Path, advice: str = "restore it from a copy or mine the run again",
                  root: str | Path | None = None) -> dict[str, Any]:
    """The manifest at `path` (a regular file inside `root`, default its folder, of at most 16 MiB);
    an unreadable or malformed one is a one-line :func:`damaged` error."""
    try:
        manifest = _read_json(path, root, "manifest")
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, f"not JSON: {str(exc)[:80]}", advice) from None
    problem = _manifest_problem(manifest)
    if problem:
        raise damaged(path, problem, advice)
    return manifest


def read_images(path: str | Path, root: str | Path | None = None) -> list[str]:
    """``images.json`` (a regular file inside `root`, default its folder, of at most 256 MiB): the
    relative image paths, checked."""
    try:
        paths = _read_json(path, root, "images")
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, f"not JSON: {str(exc)[:80]}", "restore it from a copy or mine the run again") from None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise damaged(path, "not a list of image paths", "restore it from a copy or mine the run again")
    outside = next((p for p in paths if not relative_inside(p)), None)
    if outside is not None:
        raise damaged(path, f"entry {outside[:80]!r} is not a path inside the dataset folder", "mine the run again")
    return paths


def read_arrays(path: str | Path, advice: str = "restore it from a copy or mine the run again",
                root: str | Path | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (a regular file inside `root`, default its folder; never
    unpickled); a truncated or foreign file, or one whose headers declare more than it holds, is
    :func:`damaged`."""
    target = checked_file(path, Path(path).parent if root is None else root, "arrays")
    if not zipfile.is_zipfile(target):
        raise damaged(path, "not an .npz archive: empty, truncated or another kind of file", advice)
    npz_members(target, advice)
    try:
        with np.load(target, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise damaged(path, f"not a readable .npz: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}",
                      advice) from None


@dataclass
class Run:
    """Read access to a run directory (see module doc). Use :func:`open_run`."""

    root: Path
    #: Folders the user gave whose images the run may read (its recorded dataset root must be one of
    #: them, lie inside one, or lie inside the run); `trust_dataset` takes the recorded root as given.
    datasets: tuple[Path, ...] = ()
    trust_dataset: bool = False
    _topk: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``, checked (see :func:`read_manifest`)."""
        return read_manifest(self.root / MANIFEST, root=self.root)

    @cached_property
    def images(self) -> list[str]:
        """``images.json``, checked; ``[]`` before mining wrote it."""
        path = self.root / IMAGES
        return read_images(path, self.root) if os.path.lexists(path) else []

    @cached_property
    def dataset_problem(self) -> str | None:
        """Why the run's images cannot be read (None when they can): no recorded dataset root, or one
        outside the run that is not a folder the user gave."""
        root = (self.manifest.get("dataset") or {}).get("root")
        if not root:
            return f"run {str(self.root)!r} records no dataset folder"
        if self.trust_dataset or inside(Path(root), self.root) or any(inside(Path(root), d) for d in self.datasets):
            return None
        return (f"run {str(self.root)!r} reads its images from {root!r}, which is outside the run and not a folder "
                f"you gave: give it as `dataset` (--dataset {root}) to show them")

    @property
    def dataset_root(self) -> Path:
        """The folder the run's images are read from, once it passed :attr:`dataset_problem`."""
        if self.dataset_problem:
            raise VisUsageError(self.dataset_problem)
        return Path(self.manifest["dataset"]["root"]).resolve()

    @property
    def layers(self) -> list[str]:
        """Canonical names of the mined layers, in manifest order."""
        return list(self.manifest.get("layers", {}))

    def aliases(self, layer: str) -> list[str]:
        """Aliases of a mined layer (e.g. ``conv4``, ``conv4_3``)."""
        return list(self.manifest.get("layers", {}).get(layer, {}).get("aliases", []))

    def short_name(self, layer: str) -> str:
        """The layer's first alias, else its canonical name (see :func:`short_name`)."""
        return short_name(layer, self.aliases(layer))

    def layer_info(self, layer: str) -> dict[str, Any]:
        """Manifest entry of a layer (aliases, shape, rf_size, rf_stride, rf_offset, units)."""
        return dict(self.manifest.get("layers", {}).get(layer, {}))

    def resolve(self, layer: str) -> str:
        """The canonical name of a mined layer given by name or alias (else a usage error)."""
        if layer in self.layers:
            return layer
        for name in self.layers:
            if layer in self.aliases(name):
                return name
        raise VisUsageError(f"layer {layer!r} is not in run {str(self.root)!r}; mined: {', '.join(self.layers)}")

    def topk(self, layer: str) -> dict[str, np.ndarray]:
        """``values, image_index, y, x`` arrays ``[U, k]`` of a layer (read once per change of the file)."""
        return {key: value.copy() for key, value in self._topk_arrays(self.resolve(layer)).items()}

    def _topk_arrays(self, name: str) -> dict[str, np.ndarray]:
        path = layer_dir(self.root, name) / "topk.npz"
        stamp = path.stat().st_mtime_ns if path.exists() else None
        cached = self._topk.get(name)
        if cached is None or cached[0] != stamp:
            arrays = read_arrays(path, root=self.root)
            self._check_topk(path, name, arrays)
            cached = self._topk[name] = (stamp, arrays)
        return cached[1]

    def _check_topk(self, path: Path, name: str, arrays: dict[str, np.ndarray]) -> None:
        """The numbers of ``topk.npz`` against the run: four ``[U, k]`` integer/float arrays, U the
        manifest's units, image indices within ``images.json`` (-1: empty), positions within the input."""
        if any(key not in arrays for key in ("values", "image_index", "y", "x")):
            raise damaged(path, "it lacks one of values, image_index, y, x", "mine the run again")
        shape = arrays["values"].shape
        if len(shape) != 2 or any(arrays[key].shape != shape for key in ("image_index", "y", "x")):
            raise damaged(path, "its arrays are not all [units, k]", "mine the run again")
        if not all(arrays[key].dtype.kind in "iu" for key in ("image_index", "y", "x")) \
                or arrays["values"].dtype.kind != "f":
            raise damaged(path, "its arrays have the wrong types", "mine the run again")
        units = self.layer_info(name).get("units")
        if units is not None and units != shape[0]:
            raise damaged(path, f"{shape[0]} rows for the manifest's {units} units of {name!r}", "mine the run again")
        index = arrays["image_index"]
        if index.size and (index.min() < -1 or (self.images and index.max() >= len(self.images))):
            raise damaged(path, f"an image index outside 0…{len(self.images) - 1}", "mine the run again")
        side = _input_side(self.manifest)
        for key in ("y", "x"):
            if arrays[key].size and (arrays[key].min() < -1 or arrays[key].max() >= side):
                raise damaged(path, f"a position {key} outside the {side}-px input", "mine the run again")

    def stats(self, layer: str) -> dict[str, np.ndarray]:
        """``mean_max, frac_active [U], hist_edges, hist_counts [U, bins]`` of a layer."""
        return read_arrays(layer_dir(self.root, self.resolve(layer)) / "stats.npz", root=self.root)

    def units(self, layer: str) -> int:
        """Number of units of a mined layer."""
        return int(self.layer_info(self.resolve(layer)).get("units") or self.topk(layer)["values"].shape[0])

    def image_path(self, index: int) -> Path:
        """Dataset image `index` through the gate: listed in ``images.json``, inside the dataset root
        (which itself must be the run's own folder or one the user gave: :attr:`dataset_problem`), a
        regular file of at most 512 MiB. Else a usage error (the root) or :func:`damaged`."""
        images = self.images
        if not 0 <= int(index) < len(images):
            raise damaged(self.root / IMAGES, f"it has no image {index}", "mine the run again")
        root = self.dataset_root
        return checked_file(root / images[int(index)], root, "image")

    def file(self, path: str | Path, kind: str = "image") -> Path:
        """A file of the run (a patch, an optimised image) through the gate: a regular file inside the
        run, within its size cap (see :func:`~vistoolbox.runfiles.checked_file`)."""
        return checked_file(path, self.root, kind)

    def whole_image(self, layer: str) -> bool:
        """True for layers whose units see the whole image (fc layers, unknown geometry): their
        patches are the model's input images."""
        return self.layer_info(self.resolve(layer)).get("rf_size") is None

    def patch(self, layer: str, unit: int, rank: int | None = None, view: str = "") -> Path:
        """The picture of a top-k hit (`rank`), of one of its views, or the unit's montage (`rank`
        None; see :func:`patch_path`). For :meth:`whole_image` layers a hit's picture is the stored
        input image (:func:`input_path`; runs from before it have a copy per unit) and there is no
        montage file."""
        name = self.resolve(layer)
        own = patch_path(self.root, name, unit, rank, view)
        if rank is None or view or not self.whole_image(name) or own.is_file():
            return own
        index = int(self._topk_arrays(name)["image_index"][unit, rank])
        return input_path(self.root, index) if index >= 0 else own

    def maximized(self, layer: str, unit: int) -> Path:
        """See :func:`maximize_path`."""
        return maximize_path(self.root, self.resolve(layer), unit)

    def accentuated(self, layer: str, unit: int, rank: int) -> Path:
        """See :func:`accentuate_path`."""
        return accentuate_path(self.root, self.resolve(layer), unit, rank)

    def maximized_record(self, layer: str, unit: int) -> dict[str, Any] | None:
        """The JSON record beside a unit's optimised image (None when there is none or it is unreadable)."""
        try:
            record = _read_json(self.maximized(layer, unit).with_suffix(".json"), self.root, "record")
        except (OSError, ValueError, VisRuntimeError):
            return None
        return record if isinstance(record, dict) else None

    @property
    def min_inside(self) -> float:
        """The run's position policy: the share of a unit's receptive field that had to lie inside the
        image for its maximum to count (0: every position; runs from before the policy)."""
        return float((self.manifest.get("positions") or _ABSENT["positions"])["min_inside"])

    @property
    def complete(self) -> bool:
        """True once ``vis mine`` finished the run."""
        return self.manifest.get("status") == "complete"


def _input_side(manifest: Mapping[str, Any]) -> int:
    """The side of the model's input (positions of a top-k hit lie below it)."""
    prep = manifest.get("preprocessing") or {}
    side = prep.get("crop") or manifest.get("input_size") or prep.get("resize")
    return int(side) if isinstance(side, int) and side > 0 else 4096


def open_run(path: str | Path, datasets: Sequence[str | Path] = (), trust_dataset: bool = False) -> Run:
    """Open a run directory written by ``vis mine``; a missing or foreign folder is a usage error.

    Its images are read only from inside the run or inside `datasets` (folders the user gave; see
    :attr:`Run.dataset_problem`), or from its recorded dataset root with `trust_dataset` (for
    commands whose results only the user who named the run sees)."""
    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise VisUsageError(f"{str(root)!r} is not a vistoolbox run (no manifest.json); make one with `vis mine`")
    run = Run(root.resolve(), tuple(Path(d).resolve() for d in datasets), trust_dataset)
    run.manifest  # noqa: B018 - read (and check) it now: a damaged run fails when it is opened
    return run


# --------------------------------------------------------------------------- writing
def versions() -> dict[str, str]:
    """Versions recorded in a manifest."""
    import torch
    import torchvision

    return {"vistoolbox": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def write_manifest(out: str | Path, identity: Mapping[str, Any], status: str, views: Sequence[str],
                   counts: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
    """``RUN/manifest.json``: the run's `identity` fields, its `status` (``running`` | ``complete``),
    the `views` it was mined with, versions and `counts` (images, seen, skipped, skipped_paths)."""
    manifest = {**identity, "status": status, "views": list(views), "versions": versions(), "counts": dict(counts),
                **(extra or {})}
    return write_json(Path(out) / MANIFEST, manifest, durable=True)


def write_images(out: str | Path, paths: Sequence[str]) -> Path:
    """``RUN/images.json``: the dataset's image paths in index order."""
    return write_json(Path(out) / IMAGES, list(paths), durable=True)


def write_layer_arrays(out: str | Path, layer: str, topk: Mapping[str, np.ndarray],
                       stats: Mapping[str, np.ndarray]) -> None:
    """``layers/<name>/topk.npz`` and ``stats.npz`` of one layer (atomic)."""
    write_npz(layer_dir(out, layer) / "topk.npz", dict(topk), durable=True)
    write_npz(layer_dir(out, layer) / "stats.npz", dict(stats), durable=True)


def start_leftovers(out: str | Path) -> list[Path] | None:
    """What a run killed before it wrote its manifest can leave in `out` (``images.json`` and the
    temp files of it and of the manifest); None when `out` holds anything else."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = list(out.iterdir())
    ours = [p for p in found if p.is_file() and (p.name == IMAGES or is_temp_of(p.name, (MANIFEST, IMAGES)))]
    return ours if len(ours) == len(found) else None


def remove_temps(out: str | Path) -> int:
    """Remove the temp files that killed atomic writes left in the run's own folders (the run folder,
    ``layers/<name>/`` and their ``patches/``; not ``maximize/``, which another process may be
    writing). Returns how many were removed."""
    out = Path(out)
    folders = [out, *(out / "layers").glob("*/"), *(out / "layers").glob("*/patches/")]
    removed = 0
    for folder in folders:
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.is_file() and is_temp_of(path.name):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def clear_run(out: str | Path) -> None:
    """Remove what a run wrote (only the format's own files)."""
    out = Path(out)
    if out.is_dir():
        remove_temps(out)
    for name in (MANIFEST, IMAGES, CHECKPOINT, SHARD_STATE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "layers", ignore_errors=True)
    shutil.rmtree(out / INPUTS, ignore_errors=True)


def identity_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The identity fields of a manifest (plus ``batch_size``), absent ones as their old meaning."""
    return {key: manifest.get(key, _ABSENT.get(key)) for key in IDENTITY_KEYS + ("batch_size",)}


def identity_changes(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str] = IDENTITY_KEYS) -> list[str]:
    """The identity `keys` whose values differ between two manifests (compared as JSON)."""
    same = lambda value: json.loads(json.dumps(value))  # noqa: E731 - tuples vs lists, numpy scalars
    return [key for key in keys if same(old.get(key, _ABSENT.get(key))) != same(new.get(key, _ABSENT.get(key)))]


# --------------------------------------------------------------------------- training runs
#: The training log of a watched run (``vistoolbox.watch`` / ``vis train``), relative to the run.
TRAINING_LOG = "training/log.jsonl"
#: The record kinds the log holds (see docs/run-directory.md, "Training runs").
RECORD_KINDS = ("start", "stats", "topk", "epoch", "steer")


def training_log_path(run: str | Path) -> Path:
    """``RUN/training/log.jsonl``."""
    return Path(run) / TRAINING_LOG


def probe_path(run: str | Path, index: int) -> Path:
    """``RUN/training/probe/img_0012.png``: probe image `index` as the model saw it (0–1 RGB)."""
    return Path(run) / "training" / "probe" / f"img_{index:04d}.png"


def checkpoint_path(run: str | Path, epoch: int) -> Path:
    """``RUN/checkpoints/epoch_003.pt``: the training state after epoch `epoch` (counted from 1)."""
    return Path(run) / "checkpoints" / f"epoch_{epoch:03d}.pt"


def epoch_checkpoints(run: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every epoch checkpoint of a training run, oldest first."""
    found = []
    for path in (Path(run) / "checkpoints").glob("epoch_*.pt"):
        number = path.stem.removeprefix("epoch_")
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and ±inf become None (browsers cannot parse them), numpy scalars and
    arrays plain numbers and lists."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


class TrainingLogWriter:
    """Appends records to ``RUN/training/log.jsonl``: one JSON object per line, written and fsync'd
    one record at a time, so a kill loses at most the record being written. Opening the log cuts a
    torn last line (a record whose write was killed) so that the next record starts on its own line."""

    def __init__(self, run: str | Path) -> None:
        self.path = training_log_path(run)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - kept open for the run's lifetime
        self._file.seek(0)
        data = self._file.read()
        if data and not data.endswith(b"\n"):
            self._file.truncate(data.rfind(b"\n") + 1)
        self._file.seek(0, 2)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record (a dict with ``kind`` and ``step``) and flush it to the disk."""
        if record.get("kind") not in RECORD_KINDS:
            raise ValueError(f"unknown training record kind {record.get('kind')!r}; valid: {', '.join(RECORD_KINDS)}")
        line = json.dumps(_finite(record), allow_nan=False, separators=(",", ":")) + "\n"
        self._file.write(line.encode())
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TrainingLogWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TrainingLog:
    """A training log as read back (:func:`read_training_log`): its records in order, and views on them.

    ``records`` is the run's effective history: when training resumed (a ``start`` record at step
    ``s``), the records that an interrupted session wrote after step ``s`` are dropped, since training
    went on from the checkpoint at ``s`` instead."""

    records: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The records of one kind (``start``, ``stats``, ``topk``, ``epoch``, ``steer``)."""
        return [r for r in self.records if r.get("kind") == kind]

    @property
    def layers(self) -> dict[str, dict[str, Any]]:
        """Watched layer → ``{units, type}`` (from the last ``start`` record)."""
        starts = self.of("start")
        return dict(starts[-1].get("layers", {})) if starts else {}

    def scalar(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``steps, values`` of ``loss`` or a metric of the ``stats`` records (NaN where absent)."""
        rows = self.of("stats")
        values = [r.get("loss") if name == "loss" else (r.get("metrics") or {}).get(name) for r in rows]
        return (np.array([r["step"] for r in rows], dtype=np.int64),
                np.array([np.nan if v is None else v for v in values], dtype=np.float64))

    def unit_series(self, layer: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """``steps [T], values [T, U]`` of a per-unit statistic (``act_sum``, ``act_mean``,
        ``max_mean``, ``weight_norm``, ``grad_norm``) of a watched layer (NaN where absent)."""
        rows = [r for r in self.of("stats") if layer in (r.get("layers") or {})]
        units = int(self.layers.get(layer, {}).get("units", 0))
        values = np.full((len(rows), units), np.nan)
        for i, row in enumerate(rows):
            got = row["layers"][layer].get(field)
            if got is not None:
                values[i, :len(got)] = [np.nan if v is None else v for v in got]
        return np.array([r["step"] for r in rows], dtype=np.int64), values

    def epochs(self) -> list[dict[str, Any]]:
        """The ``epoch`` records: ``epoch, step, test_accuracy, train_loss, checkpoint``."""
        return self.of("epoch")


def read_training_log(run: str | Path) -> TrainingLog:
    """The training log of `run` (see :class:`TrainingLog`). A torn last line (the write a kill
    interrupted) is ignored; any other line that is not a JSON object is :func:`damaged`."""
    path = training_log_path(run)
    if not path.is_file():
        raise VisUsageError(f"{str(Path(run))!r} has no training log ({TRAINING_LOG}); make one with "
                            "`vis train` or `vistoolbox.watch`")
    data = path.read_bytes()
    lines = data.split(b"\n")
    lines = lines[:-1]  # the text after the last newline: empty, or a torn record
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise damaged(path, f"line {number} is not a training record", "restore it from a copy or train again")
        if record.get("kind") == "start":
            records = [r for r in records if r["step"] <= record["step"]]
        records.append(record)
    return TrainingLog(records)


def check_network(run: Run, described: Mapping[str, Any], seed: int | None, action: str = "write into it") -> None:
    """Refuse to `action` a run with another network than the one it was mined with: `described` is
    the model's :meth:`~vistoolbox.LoadedModel.describe` and `seed` its seed (which only names random
    weights). One line names what differs and what the run has."""
    manifest = run.manifest
    theirs = {"model": manifest.get("model"), "weights": manifest.get("weights"),
              "seed": manifest.get("seed") if manifest.get("weights") == "random" else None}
    ours = {"model": described.get("model"), "weights": described.get("weights"),
            "seed": seed if described.get("weights") == "random" else None}
    differs = [key for key in ("model", "weights") if theirs[key] != ours[key]]
    sha = manifest.get("weights_sha256"), described.get("weights_sha256")
    if "weights" in differs and sha[0] and sha[0] == sha[1]:
        differs.remove("weights")   # the same weights file under another path
    if None not in (theirs["seed"], ours["seed"]) and theirs["seed"] != ours["seed"]:
        differs.append("seed")
    if not differs:
        return
    has = " ".join(f"--{key} {theirs[key]}" for key in ("model", "weights", "seed") if theirs[key] is not None)
    got = ", ".join(f"{key} {ours[key]!r}" for key in differs)
    raise VisUsageError(f"run {str(run.root)!r} was mined with another network ({got} differs); it has {has}: "
                        f"give those to {action}")
