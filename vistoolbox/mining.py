"""``vis mine``: stream a dataset through a model once and keep, per unit, the top-k images.

The pipeline: :func:`~vistoolbox.datasets.discover_images` → a DataLoader → one
:class:`~vistoolbox.extractor.FeatureExtractor` pass per batch (stopping after the deepest mined
layer) → :class:`~vistoolbox.topk.UnitTopK` per layer → the run directory of
:mod:`vistoolbox.store` (top-k, stats, then patches from :mod:`vistoolbox.patches`).

Checkpoints (``RUN/checkpoint.npz``, atomic) fall on batch boundaries, shards are cut on batch
boundaries, so a resumed, sharded or Ray run feeds every image through the model in exactly the
same batch as an uninterrupted local run and the results are bit-identical (a different
``batch_size`` can change activations in the last float bit, never the tie rule).
"""
from __future__ import annotations

import io
import json
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .datasets import ImageList, Transform, discover_images, make_loader
from .errors import VisUsageError
from .extractor import FeatureExtractor
from .files import read_json, write_atomic, write_json
from .models import LoadedModel
from .layers import layer_table
from .store import layer_dir
from .topk import UnitTopK

CHECKPOINT = "checkpoint.npz"
SHARD_STATE = "shard_state.npz"  # exact state a shard run keeps for `vis merge`
VIEW_MODES = ("deconv", "backprop", "guided")


# --------------------------------------------------------------------------- layers
def resolve_layers(model: LoadedModel, layers: Sequence[str] | None) -> list[str]:
    """Canonical names of the layers to mine (default: every conv and fc layer), duplicates removed."""
    names = list(layers) if layers else model.layers_of_type(nn.Conv2d, nn.Linear)
    if not names:
        raise VisUsageError(f"model {model.name!r} has no conv or fc layers; name some with --layers")
    canonical: list[str] = []
    for name in names:
        path = model.resolve(name)
        if path not in canonical:
            canonical.append(path)
    return canonical


def layer_entries(model: LoadedModel, paths: Sequence[str], size: int) -> dict[str, dict]:
    """Manifest entries ``{name: {aliases, type, shape, units, rf_size, rf_stride, rf_offset}}``:
    the rows of ``vis layers`` for the mined layers."""
    rows = {row.name: row.to_dict() for row in layer_table(model, size, names=list(paths))}
    entries: dict[str, dict] = {}
    for path in paths:
        shape = rows[path]["shape"] if path in rows else None
        if shape is None or len(shape) not in (1, 3):
            raise VisUsageError(f"layer {path!r} has output shape {shape}; only [C, H, W] (conv) and "
                                "[C] (fc) layers can be mined")
        entries[path] = {key: value for key, value in rows[path].items() if key != "name"}
    return entries


# --------------------------------------------------------------------------- state
@dataclass
class MiningState:
    """Everything a run needs to resume: per-layer top-k, images done, images seen and skipped."""

    layers: dict[str, UnitTopK]
    done: int = 0          # images of this run's index range already processed
    seen: int = 0          # decoded images that entered the top-k
    skipped: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, entries: dict[str, dict], k: int) -> "MiningState":
        return cls({name: UnitTopK.empty(info["units"], k) for name, info in entries.items()})

    def merge(self, other: "MiningState") -> "MiningState":
        """Union of two states over disjoint images (exact)."""
        return MiningState({name: topk.merge(other.layers[name]) for name, topk in self.layers.items()},
                           self.done + other.done, self.seen + other.seen,
                           sorted(self.skipped + other.skipped))

    def save(self, path: Path) -> None:
        """Write atomically as one ``.npz`` (arrays plus a JSON header)."""
        arrays = {f"{name}/{key}": value for name, topk in self.layers.items()
                  for key, value in topk.arrays().items()}
        header = {"done": self.done, "seen": self.seen, "skipped": self.skipped, "layers": list(self.layers)}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        _write_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> "MiningState":
        with np.load(path) as data:
            header = json.loads(bytes(data["header"]).decode())
            layers = {name: UnitTopK.from_arrays({key.split("/", 1)[1]: data[key] for key in data.files
                                                  if key.startswith(name + "/")})
                      for name in header["layers"]}
        return cls(layers, header["done"], header["seen"], header["skipped"])


# --------------------------------------------------------------------------- the streaming pass
def mine_indices(model: LoadedModel, images: ImageList, transform: Transform, state: MiningState,
                 indices: Sequence[int], batch_size: int = 32, workers: int = 0,
                 checkpoint: Callable[[MiningState], None] | None = None, checkpoint_every: int = 20,
                 quiet: bool = False, desc: str = "mine") -> MiningState:
    """Feed images `indices` (ascending) from ``state.done`` on through the model, updating `state`.

    Calls ``checkpoint(state)`` every `checkpoint_every` batches, and on Ctrl-C before re-raising.
    """
    todo = list(indices)[state.done:]
    if not todo:
        return state
    loader = make_loader(images, transform, todo, batch_size, workers)
    device = model.device
    names = list(state.layers)
    bar = tqdm(total=len(indices), initial=state.done, desc=desc, unit="img", disable=quiet, leave=False)
    batches = 0
    try:
        with FeatureExtractor(model, names) as fx, torch.no_grad():
            for index, pixels, ok in loader:
                x = model.preprocessing.normalize(pixels.to(device).float().div_(255))
                feats = fx(x)
                for name in names:
                    state.layers[name].update(feats[name], index, ok)
                state.done += len(index)
                state.seen += int(ok.sum())
                state.skipped += [int(i) for i in index[~ok]]
                batches += 1
                bar.update(len(index))
                if checkpoint is not None and batches % checkpoint_every == 0:
                    checkpoint(state)
    except KeyboardInterrupt:
        if checkpoint is not None:
            checkpoint(state)
        raise
    finally:
        bar.close()
    return state


def shard_range(count: int, shard: int, shards: int, batch_size: int) -> range:
    """Images of shard `shard` of `shards`: contiguous, cut on batch boundaries (so the batches are
    those of an unsharded run)."""
    if shards < 1 or not 0 <= shard < shards:
        raise VisUsageError(f"--shard must be i/n with 0 <= i < n, got {shard}/{shards}")
    nbatches = -(-count // batch_size)
    start, stop = (shard * nbatches) // shards, ((shard + 1) * nbatches) // shards
    return range(min(start * batch_size, count), min(stop * batch_size, count))


# --------------------------------------------------------------------------- run directory
def versions() -> dict[str, str]:
    import torchvision

    from . import __version__
    return {"vistoolbox": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def identity(model: LoadedModel, images: ImageList, transform: Transform, entries: dict[str, dict],
             k: int, shard: tuple[int, int] | None, batch_size: int, seed: int | None = None) -> dict:
    """The manifest fields that define a run: a rerun with different ones must not resume it."""
    described = model.describe()
    return {
        "model": described["model"], "weights": described["weights"],
        "weights_sha256": described["weights_sha256"],
        "seed": seed if model.weights == "random" else None, "input_size": model.input_size,
        "preprocessing": {**described["preprocessing"], **transform.to_dict()},
        "dataset": images.describe(), "k": k,
        "layers": entries,
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "batch_size": batch_size,
    }


_IDENTITY_KEYS = ("model", "weights", "weights_sha256", "seed", "input_size", "preprocessing", "dataset",
                  "k", "layers", "shard")


def prepare_out(out: Path, ident: dict, overwrite: bool) -> MiningState | None:
    """Check `out` before a run: `overwrite` → cleared, None; empty/new → None; the same run → its
    checkpoint (or None when complete or not started); a different run or foreign files → refused."""
    manifest_path = out / "manifest.json"
    if out.exists() and not out.is_dir():
        raise VisUsageError(f"--out {str(out)!r} is a file; give a folder")
    if overwrite:
        clear_run(out)
        return None
    if not manifest_path.exists():
        if out.exists() and any(out.iterdir()):
            raise VisUsageError(f"--out {str(out)!r} is not empty and is not a vistoolbox run; "
                                "choose another folder or pass --overwrite")
        return None
    old = read_json(manifest_path)
    changed = [key for key in _IDENTITY_KEYS if _comparable(old.get(key)) != _comparable(ident.get(key))]
    if changed:
        raise VisUsageError(f"--out {str(out)!r} holds a run with a different {', '.join(changed)}; "
                            "pass --overwrite to replace it or choose another --out")
    if (out / CHECKPOINT).exists():
        return MiningState.load(out / CHECKPOINT)
    return None


def _comparable(value):
    return json.loads(json.dumps(value))


def clear_run(out: Path) -> None:
    """Remove what a run wrote (only our own files)."""
    for name in ("manifest.json", "images.json", CHECKPOINT, SHARD_STATE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "layers", ignore_errors=True)


def write_manifest(out: Path, ident: dict, images: ImageList, state: MiningState | None, status: str,
                   views: Sequence[str] = (), extra: dict | None = None) -> None:
    skipped = [] if state is None else state.skipped
    manifest = {**ident, "status": status, "views": list(views), "versions": versions(),
                "counts": {"images": len(images), "seen": 0 if state is None else state.seen,
                           "skipped": len(skipped), "skipped_paths": [images.paths[i] for i in skipped]},
                **(extra or {})}
    write_json(out / "manifest.json", manifest)


def write_layers(out: Path, state: MiningState) -> None:
    """``layers/<name>/topk.npz`` and ``stats.npz`` for every layer (atomic)."""
    for name, topk in state.layers.items():
        _write_npz(layer_dir(out, name) / "topk.npz", topk.topk_file())
        _write_npz(layer_dir(out, name) / "stats.npz", topk.stats_file(state.seen))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def writer(tmp: str) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        Path(tmp).write_bytes(buf.getvalue())
    write_atomic(path, writer)


def parse_views(views: str | Sequence[str] | None) -> list[str]:
    """``"deconv,guided"`` → ``["deconv", "guided"]``; unknown names are a usage error."""
    if not views:
        return []
    items = [v.strip() for v in (views.split(",") if isinstance(views, str) else views) if v.strip()]
    bad = [v for v in items if v not in VIEW_MODES]
    if bad:
        raise VisUsageError(f"unknown view {bad[0]!r} in --with; valid: {', '.join(VIEW_MODES)}")
    return [v for v in VIEW_MODES if v in items]


# --------------------------------------------------------------------------- the command
def mine(model: LoadedModel, dataset: str | Path, out: str | Path, *, layers: Sequence[str] | None = None,
         k: int = 9, limit: int | None = None, resize: int | None = None, crop: int | None = None,
         batch_size: int = 32, workers: int = 0, views: str | Sequence[str] | None = None,
         shard: tuple[int, int] | None = None, checkpoint_every: int = 20, overwrite: bool = False,
         patches: bool = True, backend: str = "local", address: str | None = None,
         ray_tasks: int | None = None, seed: int = 0, quiet: bool = False) -> Path:
    """Mine the top-`k` images of every unit of `layers` over `dataset` into run directory `out`.

    Resumes an interrupted run of the same model/weights/dataset/preprocessing from its checkpoint;
    refuses a different one unless `overwrite`. `seed` is recorded for random weights (pass the one
    the model was built with, so `vis merge` can rebuild it). Returns the run directory (open it with
    :func:`vistoolbox.open_run`).
    """
    if k < 1:
        raise VisUsageError(f"--k must be at least 1, got {k}")
    if checkpoint_every < 1:
        raise VisUsageError(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
    if backend not in ("local", "ray"):
        raise VisUsageError(f"unknown backend {backend!r}; valid: local, ray")
    if backend == "ray" and shard is not None:
        raise VisUsageError("--shard and --backend ray do not combine; Ray shards the dataset itself")
    view_list = parse_views(views)
    out = Path(out)
    images = discover_images(dataset, limit)
    crop = crop or model.input_size
    resize = resize or (model.preprocessing.resize_size if crop == model.input_size
                        else round(crop * 256 / 224))
    if crop < 1 or resize < crop:
        raise VisUsageError(f"--resize ({resize}) must be at least --crop ({crop}), both positive")
    transform = Transform(resize, crop)
    paths = resolve_layers(model, layers)
    entries = layer_entries(model, paths, crop)
    ident = identity(model, images, transform, entries, k, shard, batch_size, seed)
    state = prepare_out(out, ident, overwrite)
    manifest_path = out / "manifest.json"
    if state is None and manifest_path.exists() and read_json(manifest_path).get("status") == "complete":
        return out  # already complete: nothing to redo
    indices = range(len(images)) if shard is None else shard_range(len(images), *shard, batch_size)
    state = state or MiningState.empty(entries, k)
    write_json(out / "images.json", images.paths)
    write_manifest(out, ident, images, state, "running", view_list)

    def checkpoint(current: MiningState) -> None:
        current.save(out / CHECKPOINT)
        write_manifest(out, ident, images, current, "running", view_list)

    if backend == "ray":
        from .ray_backend import mine_on_ray
        spec = {key: ident[key] for key in ("model", "weights", "seed", "input_size")}
        state = mine_on_ray(spec, images, transform, state, indices, batch_size=batch_size,
                            address=address, tasks=ray_tasks, quiet=quiet)
    else:
        state = mine_indices(model, images, transform, state, indices, batch_size, workers,
                             checkpoint, checkpoint_every, quiet)
    checkpoint(state)  # the pass is done: a kill from here on only redoes the files below
    finish_run(out, model, images, transform, state, ident, view_list, patches, quiet)
    return out


def finish_run(out: Path, model: LoadedModel | None, images: ImageList, transform: Transform,
               state: MiningState, ident: dict, views: Sequence[str], patches: bool, quiet: bool) -> None:
    """Write top-k, stats and patches, then mark the run complete and drop the checkpoint."""
    from .patches import render_patches

    write_layers(out, state)
    if patches:
        render_patches(out, ident["layers"], images, transform, ident["preprocessing"]["mean"], model,
                       views, quiet=quiet)
    if ident.get("shard") is not None:
        state.save(out / SHARD_STATE)
    write_manifest(out, ident, images, state, "complete", views)
    (out / CHECKPOINT).unlink(missing_ok=True)


# --------------------------------------------------------------------------- merging shards
def merge_runs(runs: Sequence[str | Path], out: str | Path, *, device: str = "auto", patches: bool = True,
               overwrite: bool = False, quiet: bool = False) -> Path:
    """Merge complete shard runs (``vis mine --shard i/n``, all n of them) into one run at `out`.

    The result equals an unsharded run with the same batch size exactly. The dataset must still be
    readable (patches are cut from it); the model is rebuilt from the manifest only for ``--with`` views.
    """
    from .models import load_model

    if not runs:
        raise VisUsageError("vis merge needs at least one run")
    manifests = []
    for run in runs:
        path = Path(run) / "manifest.json"
        if not path.is_file():
            raise VisUsageError(f"{str(run)!r} is not a vistoolbox run (no manifest.json)")
        manifest = read_json(path)
        if manifest.get("shard") is None:
            raise VisUsageError(f"{str(run)!r} is not a shard run (made without --shard i/n); nothing to merge")
        if manifest.get("status") != "complete" or not (Path(run) / SHARD_STATE).is_file():
            raise VisUsageError(f"shard run {str(run)!r} is not complete; rerun its `vis mine` command first")
        manifests.append(manifest)
    first = manifests[0]
    for run, manifest in zip(runs[1:], manifests[1:]):
        changed = [key for key in _IDENTITY_KEYS + ("batch_size",) if key != "shard"
                   and _comparable(manifest.get(key)) != _comparable(first.get(key))]
        if changed:
            raise VisUsageError(f"run {str(run)!r} differs from {str(runs[0])!r} in {', '.join(changed)}; "
                                "only shards of the same run merge")
    count = first["shard"]["count"]
    got = sorted(m["shard"]["index"] for m in manifests)
    if any(m["shard"]["count"] != count for m in manifests) or got != sorted(set(got)):
        raise VisUsageError(f"shards {got} are not distinct shards of one --shard i/{count} split")
    missing = sorted(set(range(count)) - set(got))
    if missing:
        raise VisUsageError(f"shards {', '.join(f'{i}/{count}' for i in missing)} are missing; "
                            f"give all {count} shard runs")
    order = sorted(range(len(runs)), key=lambda i: manifests[i]["shard"]["index"])
    state = MiningState.load(Path(runs[order[0]]) / SHARD_STATE)
    for i in order[1:]:
        state = state.merge(MiningState.load(Path(runs[i]) / SHARD_STATE))
    ident = {key: first.get(key) for key in _IDENTITY_KEYS + ("batch_size",)}
    ident["shard"] = None
    out = Path(out)
    dataset = first["dataset"]
    images = ImageList(Path(dataset["root"]), read_json(Path(runs[0]) / "images.json"), dataset["kind"])
    if images.fingerprint() != dataset["fingerprint"]:
        raise VisUsageError(f"dataset {dataset['root']!r} changed since the shards were mined "
                            "(fingerprint differs); mine it again")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VisUsageError(f"--out {str(out)!r} is not empty; pass --overwrite to replace it")
    clear_run(out)
    pre = first["preprocessing"]
    transform = Transform(pre["resize"], pre["crop"])
    views = first.get("views", [])
    model = None
    if patches and views:
        model = load_model(first["model"], first["weights"], device=device, seed=first.get("seed") or 0,
                           input_size=first["input_size"], quiet=quiet)
    write_json(out / "images.json", images.paths)
    finish_run(out, model, images, transform, state, ident, views, patches, quiet)
    return out
