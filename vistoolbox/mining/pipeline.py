"""``vis mine`` and ``vis merge``: stream a dataset through a model once and keep, per unit, the
top-k images; join shard runs exactly.

The pipeline: :func:`~vistoolbox.mining.datasets.discover_images` → the streaming pass
(:mod:`.stream`, one :class:`~vistoolbox.features.FeatureExtractor` pass per batch) →
:class:`~vistoolbox.mining.topk.UnitTopK` per layer → the run directory of :mod:`vistoolbox.rundir`
(top-k, stats, then patches from :mod:`.patches`).

Checkpoints (``RUN/checkpoint.npz``, atomic) fall on batch boundaries, shards are cut on batch
boundaries (:mod:`.shards`), so a resumed, sharded or Ray run feeds every image through the model in
exactly the same batch as an uninterrupted local run and the results are bit-identical (a different
``batch_size`` can change activations in the last float bit, never the tie rule).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from torch import nn

from .. import rundir
from ..errors import VisUsageError
from ..features.layers import layer_layout, layer_table
from ..features.views import parse_modes
from ..images import named
from ..limits import MAX_DECODE_PIXELS, MAX_TOPK_ENTRIES, batch_pixels, side, whole, worker_count
from ..models import LoadedModel, check_run_model, load_model, resolve_device
from .datasets import ImageList, Transform, discover_images
from .patches import render_patches
from .positions import DEFAULT_MIN_INSIDE, check_min_inside, eligible_masks, positions_identity
from .ray import mine_on_ray
from .shards import shard_range
from .stream import mine_indices
from .topk import MiningState

__all__ = ["identity", "layer_entries", "merge_runs", "mine", "resolve_layers"]


# --------------------------------------------------------------------------- layers
def resolve_layers(model: LoadedModel, layers: Sequence[str] | None) -> list[str]:
    """Canonical names of the layers to mine (default: every conv and fc layer), duplicates removed."""
    names = list(layers) if layers else model.layers_of_type(nn.Conv2d, nn.Linear)
    if not names:
        raise VisUsageError(f"model {model.name!r} has no conv or fc layers; name some with `layers`")
    canonical: list[str] = []
    for name in names:
        path = model.resolve(name)
        if path not in canonical:
            canonical.append(path)
    return canonical


def layer_entries(model: LoadedModel, paths: Sequence[str], size: int, param: str = "crop") -> dict[str, dict]:
    """Manifest entries ``{name: {aliases, type, layout, shape, units, rf, rf_size, rf_stride,
    rf_offset}}``: the rows of ``vis layers`` for the mined layers (at input `size`, the crop). A
    layer whose layout cannot be told (or that has no tensor output) is a usage error that says how
    to give it."""
    rows = {row.name: row.to_dict() for row in layer_table(model, size, names=list(paths), param=param)}
    entries: dict[str, dict] = {}
    for path in paths:
        if path not in rows or rows[path]["layout"] is None:
            layer_layout(model, path, size)  # raises the one-line error
        entries[path] = {key: value for key, value in rows[path].items() if key != "name"}
    return entries


def check_topk_size(entries: dict[str, dict], k: int) -> None:
    """Refuse a top-k table (Σ units × k entries) above :data:`~vistoolbox.limits.MAX_TOPK_ENTRIES`."""
    units = sum(int(entry["units"]) for entry in entries.values())
    if units * k > MAX_TOPK_ENTRIES:
        raise VisUsageError(f"`k` {k:,} × {units:,} units is {units * k:,} top-k entries, above the limit of "
                            f"{MAX_TOPK_ENTRIES:,}; use a smaller `k` or fewer `layers`")


# --------------------------------------------------------------------------- identity of a run
def identity(model: LoadedModel, images: ImageList, transform: Transform, entries: dict[str, dict],
             k: int, shard: tuple[int, int] | None, batch_size: int, seed: int | None = None,
             min_inside: float = 0.0) -> dict:
    """The manifest fields that define a run: a rerun with different ones must not resume it."""
    described = model.describe()
    return {
        "model": described["model"], "weights": described["weights"],
        "weights_sha256": described["weights_sha256"],
        "seed": seed if model.weights == "random" else None, "input_size": model.input_size,
        "preprocessing": {**described["preprocessing"], **transform.to_dict()},
        "dataset": images.describe(), "k": k,
        "layers": entries, "positions": positions_identity(min_inside),
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "batch_size": batch_size,
    }


def _counts(images: ImageList, state: MiningState | None) -> dict:
    skipped = [] if state is None else state.skipped
    return {"images": len(images), "seen": 0 if state is None else state.seen, "skipped": len(skipped),
            "skipped_paths": [images.paths[i] for i in skipped]}


def prepare_out(out: Path, ident: dict, overwrite: bool) -> MiningState | None:
    """Check `out` before a run: `overwrite` → cleared, None; empty/new → None; the same run → its
    checkpoint (or None when complete or not started); a different run or foreign files → refused."""
    manifest_path = out / rundir.MANIFEST
    if out.exists() and not out.is_dir():
        raise VisUsageError(f"`out` {str(out)!r} is a file; give a folder")
    if overwrite:
        rundir.clear_run(out)
        return None
    if not manifest_path.exists():
        leftovers = rundir.start_leftovers(out)
        if leftovers is None:
            raise VisUsageError(f"`out` {str(out)!r} is not empty and is not a vistoolbox run; "
                                "choose another folder or pass `overwrite`")
        for path in leftovers:  # a run killed before its manifest: start it afresh
            path.unlink()
        return None
    old = rundir.read_manifest(manifest_path, "pass `overwrite` to mine the run again")
    changed = rundir.identity_changes(old, ident)
    if changed:
        raise VisUsageError(f"`out` {str(out)!r} holds a run with a different {', '.join(changed)}; "
                            "pass `overwrite` to replace it or choose another `out`")
    if old.get("status") != "complete":
        rundir.remove_temps(out)  # what a kill during a write left behind
    checkpoint = out / rundir.CHECKPOINT
    if checkpoint.exists() and old.get("batch_size") != ident["batch_size"]:
        raise VisUsageError(f"`out` {str(out)!r} holds an unfinished run mined with `batch_size` "
                            f"{old.get('batch_size')}: resume it with the same `batch_size` (its checkpoint falls "
                            "on those batches, and only the same batches give bit-identical results), or pass "
                            "`overwrite`")
    if checkpoint.exists():
        advice = "delete it to mine again from the first image, or pass `overwrite`"
        state = MiningState.load(checkpoint, advice)
        if not state.matches({name: info["units"] for name, info in ident["layers"].items()}, ident["k"]):
            raise rundir.damaged(checkpoint, "its layers or k are not the run's", advice)
        return state
    return None


# --------------------------------------------------------------------------- the command
def mine(model: LoadedModel, dataset: str | Path, out: str | Path, *, layers: Sequence[str] | None = None,
         k: int = 9, limit: int | None = None, resize: int | None = None, crop: int | None = None,
         batch_size: int = 32, workers: int = 0, views: str | Sequence[str] | None = None,
         shard: tuple[int, int] | None = None, checkpoint_every: int = 20, overwrite: bool = False,
         patches: bool = True, backend: str = "local", address: str | None = None,
         ray_tasks: int | None = None, seed: int = 0, min_inside: float = DEFAULT_MIN_INSIDE,
         quiet: bool = False) -> Path:
    """Mine the top-`k` images of every unit of `layers` over `dataset` into run directory `out`.

    A unit's candidate for an image is its maximum over the positions whose receptive field lies at
    least `min_inside` (a share of its area) inside the image; 0 = every position (:mod:`.positions`).

    Resumes an interrupted run of the same model/weights/dataset/preprocessing from its checkpoint;
    refuses a different one unless `overwrite`. `seed` is recorded for random weights (pass the one
    the model was built with, so `vis merge` can rebuild it). Returns the run directory (open it with
    :func:`vistoolbox.open_run`).
    """
    k, checkpoint_every = whole(k, "k"), whole(checkpoint_every, "checkpoint_every")
    batch_size, workers = whole(batch_size, "batch_size"), worker_count(workers)
    if ray_tasks is not None:
        ray_tasks = whole(ray_tasks, "ray_tasks")
    if backend not in ("local", "ray"):
        raise VisUsageError(f"unknown backend {backend!r}; valid: local, ray")
    if backend == "ray" and shard is not None:
        raise VisUsageError("`shard` and `backend` ray do not combine; Ray shards the dataset itself")
    view_list = parse_modes(views, "views")
    min_inside = check_min_inside(min_inside)
    out = Path(out)
    images = discover_images(dataset, limit)
    if k > max(len(images), 9) and images:   # top-9 always works; more slots than images only cost memory
        raise VisUsageError(f"`k` {k:,} is more than the {len(images):,} images to mine; use a `k` of at most "
                            f"{max(len(images), 9):,}")
    crop_param = "input_size" if crop is None else "crop"   # the flag that sets the size the model sees
    crop = model.input_size if crop is None else side(crop, "crop")
    if resize is None:
        resize = model.preprocessing.resize_size if crop == model.input_size else round(crop * 256 / 224)
    resize = side(resize, "resize", MAX_DECODE_PIXELS)
    if resize < crop:
        raise VisUsageError(f"`resize` ({resize}) must be at least `crop` ({crop})")
    batch_pixels(batch_size, crop, crop, "batch_size")
    transform = Transform(resize, crop)
    paths = resolve_layers(model, layers)
    entries = layer_entries(model, paths, crop, crop_param)
    check_topk_size(entries, k)
    ident = identity(model, images, transform, entries, k, shard, batch_size, seed, min_inside)
    eligible = eligible_masks(entries, crop, min_inside)
    state = prepare_out(out, ident, overwrite)
    manifest_path = out / rundir.MANIFEST
    if state is None and manifest_path.exists() and rundir.read_manifest(manifest_path).get("status") == "complete":
        return out  # already complete: nothing to redo
    indices = range(len(images)) if shard is None else shard_range(len(images), *shard, batch_size)
    state = state or MiningState.empty({name: info["units"] for name, info in entries.items()}, k)
    # the manifest first: from here on a killed run is recognisable as one and resumes
    rundir.write_manifest(out, ident, "running", view_list, _counts(images, state))
    rundir.write_images(out, images.paths)

    def checkpoint(current: MiningState) -> None:
        current.save(out / rundir.CHECKPOINT)
        rundir.write_manifest(out, ident, "running", view_list, _counts(images, current))

    if backend == "ray":
        spec = {key: ident[key] for key in ("model", "weights", "seed", "input_size")}
        spec["layouts"] = {name: entry["layout"] for name, entry in entries.items()}
        state = mine_on_ray(spec, images, transform, state, indices, batch_size=batch_size,
                            address=address, tasks=ray_tasks, quiet=quiet, eligible=eligible)
    else:
        state = mine_indices(model, images, transform, state, indices, batch_size, workers,
                             checkpoint, checkpoint_every, quiet, eligible=eligible)
    if len(indices) and not state.seen:   # no data, no run: a run of -inf slots would look mined
        rundir.clear_run(out)
        raise VisUsageError(f"`dataset` {str(dataset)!r}: none of its {len(indices)} images could be decoded "
                            f"({named([images.paths[i] for i in state.skipped])}); nothing was mined")
    checkpoint(state)  # the pass is done: a kill from here on only redoes the files below
    finish_run(out, model, images, transform, state, ident, view_list, patches, quiet)
    return out


def finish_run(out: Path, model: LoadedModel | None, images: ImageList, transform: Transform,
               state: MiningState, ident: dict, views: Sequence[str], patches: bool, quiet: bool) -> None:
    """Write top-k, stats and patches, then mark the run complete and drop the checkpoint."""
    for name, topk in state.layers.items():
        rundir.write_layer_arrays(out, name, topk.topk_file(), topk.stats_file(state.seen))
    if patches:
        render_patches(out, ident["layers"], images, transform, ident["preprocessing"]["mean"], model,
                       views, quiet=quiet)
    if ident.get("shard") is not None:
        state.save(out / rundir.SHARD_STATE)
    rundir.write_manifest(out, ident, "complete", views, _counts(images, state))
    (out / rundir.CHECKPOINT).unlink(missing_ok=True)


# --------------------------------------------------------------------------- merging shards
def merge_runs(runs: Sequence[str | Path], out: str | Path, *, device: str = "auto", patches: bool = True,
               overwrite: bool = False, quiet: bool = False, model: str | None = None,
               trust_run_code: bool = False) -> Path:
    """Merge complete shard runs (``vis mine --shard i/n``, all n of them) into one run at `out`.

    The result equals an unsharded run with the same batch size exactly. The dataset must still be
    readable (patches are cut from it); the model is rebuilt only for runs mined with views: from
    `model` when given (a spec you trust), else from the manifest — a torchvision name only, never
    code that the run names (unless `trust_run_code`).
    """
    if not runs:
        raise VisUsageError("merging needs at least one run")
    resolve_device(device)  # a bad device is an error even when no model is needed
    manifests = []
    for run in runs:
        path = Path(run) / rundir.MANIFEST
        if not path.is_file():
            raise VisUsageError(f"{str(run)!r} is not a vistoolbox run (no manifest.json)")
        manifest = rundir.read_manifest(path, "mine that shard again with `overwrite`")
        if manifest.get("shard") is None:
            raise VisUsageError(f"{str(run)!r} is not a shard run (made without `shard` i/n); nothing to merge")
        if manifest.get("status") != "complete" or not (Path(run) / rundir.SHARD_STATE).is_file():
            raise VisUsageError(f"shard run {str(run)!r} is not complete; rerun its vis mine command first")
        manifests.append(manifest)
    first = manifests[0]
    keys = [key for key in rundir.IDENTITY_KEYS + ("batch_size",) if key != "shard"]
    for run, manifest in zip(runs[1:], manifests[1:]):
        changed = rundir.identity_changes(first, manifest, keys)
        if changed:
            raise VisUsageError(f"run {str(run)!r} differs from {str(runs[0])!r} in {', '.join(changed)}; "
                                "only shards of the same run merge")
    count = first["shard"]["count"]
    got = sorted(m["shard"]["index"] for m in manifests)
    if any(m["shard"]["count"] != count for m in manifests) or got != sorted(set(got)):
        raise VisUsageError(f"shards {got} are not distinct shards of one `shard` i/{count} split")
    missing = sorted(set(range(count)) - set(got))
    if missing:
        raise VisUsageError(f"shards {', '.join(f'{i}/{count}' for i in missing)} are missing; "
                            f"give all {count} shard runs")
    order = sorted(range(len(runs)), key=lambda i: manifests[i]["shard"]["index"])
    advice = "mine that shard again with `overwrite`"
    units = {name: info["units"] for name, info in (first.get("layers") or {}).items()}
    parts = [MiningState.load(Path(runs[i]) / rundir.SHARD_STATE, advice) for i in order]
    for i, part in zip(order, parts):
        if not part.matches(units, first.get("k")):
            raise rundir.damaged(Path(runs[i]) / rundir.SHARD_STATE, "its layers or k are not the run's", advice)
    state = parts[0]
    for part in parts[1:]:
        state = state.merge(part)
    ident = {**rundir.identity_of(first), "shard": None}
    out = Path(out)
    dataset = first["dataset"]
    images = ImageList(Path(dataset["root"]), rundir.read_images(Path(runs[0]) / rundir.IMAGES), dataset["kind"])
    if images.fingerprint() != dataset["fingerprint"]:
        raise VisUsageError(f"dataset {dataset['root']!r} changed since the shards were mined "
                            "(fingerprint differs); mine it again")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VisUsageError(f"`out` {str(out)!r} is not empty; pass `overwrite` to replace it")
    rundir.clear_run(out)
    pre = first["preprocessing"]
    transform = Transform(pre["resize"], pre["crop"])
    views = first.get("views", [])
    loaded = None
    if patches and views:
        if model is None:
            check_run_model(str(first["model"]), trust_run_code=trust_run_code, where=f"shard run {str(runs[0])!r}")
        loaded = load_model(model or first["model"], first["weights"], device=device, seed=first.get("seed") or 0,
                            input_size=first["input_size"], quiet=quiet,
                            layouts={name: entry["layout"] for name, entry in (first.get("layers") or {}).items()
                                     if isinstance(entry, dict) and entry.get("layout")})
    rundir.write_images(out, images.paths)
    finish_run(out, loaded, images, transform, state, ident, views, patches, quiet)
    return out
