"""Benchmark: the three views (deconv, backprop, guided) of a unit's top-9 images, side by side in one
process, one thread, alternating round by round (medians):

* ``windowed``: the library's default — the passes run on each hit's stride-aligned receptive-field
  window only (``batch_views``), against ``whole``: the same call on the whole images
  (``windowed=False``). The views must be equal (allclose; reported).
* ``--modes``: also one call for the three views against one call per view (a forward pass each).

Usage: python scripts/bench_views.py [--model vgg16 --weights hed] [--layers conv3_3,conv4_3,conv5_3]
       [--rounds 5] [--modes]
Hits: unit 12 at 9 seeded random positions over the layer's map, on 9 random images of the model's
input size. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import load_model  # noqa: E402
from vistoolbox.features.layers import layer_field  # noqa: E402
from vistoolbox.features.views import MODES, batch_views  # noqa: E402


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_layer(model, layer: str, images: torch.Tensor, rounds: int, modes: bool, seed: int = 0) -> dict:
    shape, _ = layer_field(model, layer, images.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    count = images.shape[0]
    units = [12 % shape[0]] * count
    ys = torch.randint(0, shape[1], (count,), generator=gen).tolist()
    xs = torch.randint(0, shape[2], (count,), generator=gen).tolist()
    args = (model, images, layer, units, ys, xs)
    batch_views(*args)  # warm-up (also traces and caches the field)
    batch_views(*args, windowed=False)
    windowed, whole, per_view = [], [], []
    for _ in range(rounds):
        t, fast = _timed(batch_views, *args)
        windowed.append(t)
        t, slow = _timed(batch_views, *args, windowed=False)
        whole.append(t)
        if modes:
            per_view.append(sum(_timed(batch_views, *args, [m], windowed=False)[0] for m in MODES))
    same = all(torch.allclose(fast[m], slow[m], rtol=1e-4, atol=1e-5 * float(slow[m].abs().max())) for m in MODES)
    row = {"layer": layer, "map": list(shape[1:]), "windowed_s": round(statistics.median(windowed), 4),
           "whole_s": round(statistics.median(whole), 4),
           "speedup": round(statistics.median(w / f for w, f in zip(whole, windowed)), 2),
           "same_views": same}
    if modes:
        row["call_per_view_s"] = round(statistics.median(per_view), 4)
        row["one_call_vs_per_view"] = round(statistics.median(p / w for p, w in zip(per_view, whole)), 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--layers", default="conv3_3,conv4_3,conv5_3")
    parser.add_argument("--images", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", action="store_true", help="also time one call per view")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, args.weights, quiet=True)
    size = model.preprocessing.input_size
    images = torch.rand(args.images, 3, size, size, generator=torch.Generator().manual_seed(0))
    rows = []
    for layer in [name.strip() for name in args.layers.split(",") if name.strip()]:
        rows.append(bench_layer(model, layer, images, args.rounds, args.modes))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"model": args.model, "weights": args.weights, "images": args.images, "size": size,
                      "threads": 1, "rounds": args.rounds, "layers": rows}))


if __name__ == "__main__":
    main()
