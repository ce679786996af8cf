"""Could `vis demo` ship a stylizer? Seconds per training step of the small stylizer the dashboard's
fast-mode empty state suggests (96 px, batch 2, width 16, 3 residual blocks, --input-skip) against
the README's stylizer example (128 px, batch 4, width 32, 5 blocks), interleaved in one process with
one torch thread (medians over `--rounds`); then, with `--full`, the small one trained for `--steps`
steps on the demo images, timed, with a picture of two photos and their stylised versions.

    python scripts/bench_demo_stylizer.py --dataset vis-demo/images [--full --steps 300 --out DIR]

The style is scikit-image's immunohistochemistry (the Transfer tab's default style; offline).
The last line printed is JSON.
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

from vistoolbox import load_model, load_tensor, stylize, train_stylizer  # noqa: E402
from vistoolbox.images import save_png, to_tensor  # noqa: E402

SMALL = dict(size=96, batch_size=2, width=16, res_blocks=3)
README = dict(size=128, batch_size=4, width=32, res_blocks=5)


def style_tensor() -> torch.Tensor:
    from PIL import Image
    from skimage import data

    image = to_tensor(Image.fromarray(data.immunohistochemistry()))
    return image if image.dim() == 4 else image.unsqueeze(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probe-steps", type=int, default=6)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="bench-demo-stylizer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model("vgg16", "hed", quiet=True)
    style = style_tensor()
    per_step: dict[str, list[float]] = {"small": [], "readme": []}
    for _ in range(args.rounds):
        for name, config in (("small", SMALL), ("readme", README)):
            start = time.perf_counter()
            train_stylizer(model, style, args.dataset, steps=args.probe_steps, input_skip=True, quiet=True,
                           checkpoint_every=10**6, **config)
            per_step[name].append((time.perf_counter() - start) / args.probe_steps)
    result: dict = {name: {"median_s_per_step": statistics.median(v), "rounds": v} for name, v in per_step.items()}
    result["ratio_small_to_readme"] = result["small"]["median_s_per_step"] / result["readme"]["median_s_per_step"]
    if args.full:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        stylizer = train_stylizer(model, style, args.dataset, out=out / "small.pt", steps=args.steps, input_skip=True,
                                  quiet=True, checkpoint_every=10**6, **SMALL)
        result["full"] = {"steps": args.steps, "seconds": time.perf_counter() - start}
        photos = sorted(Path(args.dataset).rglob("*_s100_r0c0.jpg"))[:2]
        rows = [torch.cat([x, stylize(stylizer, x)], -1) for x in (load_tensor(p) for p in photos)]
        save_png(torch.cat(rows, -2), out / "small.png")
        result["full"]["picture"] = str(out / "small.png")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
