"""Benchmark: the three views (deconv, backprop, guided) of a unit's top-9 images in one call
(one forward pass, three backward passes) against one call per view (a forward pass each, as
before). Same model, batch and unit; one thread; the two ways alternate round by round and we
report medians and the ratio.

Usage: python scripts/bench_views.py [--model vgg16 --weights hed] [--layer conv4_3] [--rounds 5]
The last line of output is one JSON object.
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
from vistoolbox.features.views import MODES, batch_views  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--layer", default="conv4_3")
    parser.add_argument("--images", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, args.weights)
    size = model.preprocessing.input_size
    images = torch.rand(args.images, 3, size, size, generator=torch.Generator().manual_seed(0))
    units, ys, xs = [12] * args.images, [size // 32] * args.images, [size // 32] * args.images
    together, apart = [], []
    batch_views(model, images, args.layer, units, ys, xs)  # warm-up
    for _ in range(args.rounds):
        start = time.perf_counter()
        one = batch_views(model, images, args.layer, units, ys, xs)
        together.append(time.perf_counter() - start)
        start = time.perf_counter()
        each = {mode: batch_views(model, images, args.layer, units, ys, xs, [mode])[mode] for mode in MODES}
        apart.append(time.perf_counter() - start)
    same = all(torch.allclose(one[m], each[m], rtol=1e-4, atol=1e-6) for m in MODES)
    result = {"model": args.model, "weights": args.weights, "layer": args.layer, "images": args.images,
              "size": size, "threads": 1, "rounds": args.rounds,
              "one_call_s": round(statistics.median(together), 4), "call_per_view_s": round(statistics.median(apart), 4),
              "speedup": round(statistics.median(apart) / statistics.median(together), 3), "same_views": same}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
