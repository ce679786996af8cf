"""Synthetic runs for the export tests, written through the run-directory API (any names, fast)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from vistoolbox.images import save_png
from vistoolbox.rundir import patch_path, write_images, write_layer_arrays, write_manifest

__all__ = ["write_run"]


def write_run(root: Path, layers: Sequence[str] = ("conv_a", "conv_b"), units: int = 20, k: int = 3,
              classes: Sequence[str] = ("cats", "dogs"), model: str = "tiny", aliases: dict | None = None,
              suffix: str = ".png") -> Path:
    """A complete run of a made-up model: 40×30 images (`suffix` files) in ImageFolder `classes`, 8×8
    maps with an 8-px receptive field (stride 4, offset −2), top-`k` of every unit with its patches."""
    rng = np.random.default_rng(0)
    data = root / "data"
    names = []
    for c, cls in enumerate(classes):
        for i in range(3):
            rel = f"{cls}/img_{i}{suffix}"
            (data / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(data / rel)
            names.append(rel)
    run = root / "run"
    info = {name: {"aliases": list((aliases or {}).get(name, [])), "type": "Conv2d", "shape": [units, 8, 8],
                   "units": units, "rf_size": [8, 8], "rf_stride": [4, 4], "rf_offset": [-2, -2]} for name in layers}
    identity = {"model": model, "weights": "random", "weights_sha256": None, "seed": 0, "input_size": 32,
                "preprocessing": {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": 32, "crop": 32},
                "dataset": {"root": str(data), "kind": "imagefolder", "count": len(names), "fingerprint": "0",
                            "classes": list(classes)},
                "k": k, "layers": info, "shard": None}
    write_manifest(run, identity, "complete", [], {"images": len(names), "seen": len(names), "skipped": 0,
                                                   "skipped_paths": []})
    write_images(run, names)
    edges = np.array([-np.inf, -1, 0, 0.5, 1, 2, 4, np.inf])
    for name in layers:
        values = np.sort(rng.normal(2, 1, (units, k)).astype(np.float32), axis=1)[:, ::-1]
        topk = {"values": values.copy(), "image_index": rng.integers(0, len(names), (units, k)),
                "y": rng.integers(0, 8, (units, k)), "x": rng.integers(0, 8, (units, k))}
        counts = rng.integers(0, 4, (units, len(edges) - 1))
        stats = {"mean_max": values.mean(1), "frac_active": np.full(units, 0.75), "hist_edges": edges,
                 "hist_counts": counts}
        write_layer_arrays(run, name, topk, stats)
        for unit in range(units):
            for rank in range(k):
                tile = np.full((8, 8, 3), (unit * 11 % 255, rank * 60, 128), dtype=np.uint8)
                save_png(Image.fromarray(tile), patch_path(run, name, unit, rank))
    return run
