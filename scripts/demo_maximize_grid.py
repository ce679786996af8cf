"""How good are a whole layer's optimised images at a given cost? Renders every unit of a VGG16
(`hed`) layer with `vis demo`'s recipe (its preset `quick`, transforms scaled to the image size) for each
setting in turn, in one process with one torch thread, and reports per setting: seconds, the share
of flat images (pixel standard deviation < 12 of 255: the optimisation never left the grey start),
the share whose unit ended positive and above its start ("rose"), clipped pixels and the median final
activation. This chose the demo's 32 px / 64 steps / lr 0.1.

    python scripts/demo_maximize_grid.py --layer conv2 --out /tmp/grid [--settings 32:64:0.1,48:48:0.05]

Each setting is SIZE:STEPS:LR. A sprite of each setting's images (16 per row) is written into
`--out`. The last line printed is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import load_model  # noqa: E402
from vistoolbox.actmax import maximize_layer  # noqa: E402
from vistoolbox.demo import DEMO_PRESET  # noqa: E402
from vistoolbox.mining.gallery import sprite_image  # noqa: E402

FLAT_STD = 12.0


def grade(paths: list[Path]) -> dict:
    """Flat share, rose share, clipped pixels and median activation of rendered units."""
    stds, clipped, rose, acts = [], [], [], []
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        record = json.loads(path.with_suffix(".json").read_text())
        stds.append(pixels.std())
        clipped.append(float(((pixels <= 0) | (pixels >= 255)).mean()))
        rose.append(record["activation_final"] > max(0.0, record["activation_initial"]))
        acts.append(record["activation_final"])
    return {"units": len(paths), "flat_share": round(float(np.mean(np.array(stds) < FLAT_STD)), 3),
            "rose_share": round(float(np.mean(rose)), 3), "clipped_share": round(float(np.mean(clipped)), 4),
            "median_activation": round(float(np.median(acts)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", default="conv2")
    parser.add_argument("--settings", default="48:48:0.05,32:64:0.1,32:64:0.2,32:96:0.1")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default="demo-maximize-grid")
    args = parser.parse_args()
    model = load_model("vgg16", "hed", quiet=True)
    torch.set_num_threads(1)
    results = []
    for setting in args.settings.split(","):
        size, steps, lr = setting.split(":")
        run = Path(args.out) / f"{args.layer}_{size}_{steps}_{lr}"
        start = time.perf_counter()
        paths = maximize_layer(model, args.layer, run, preset=DEMO_PRESET, batch=args.batch, size=int(size),
                               steps=int(steps), lr=float(lr), overwrite=True)
        seconds = time.perf_counter() - start
        sprite_image(paths, 16, 48).save(run.with_suffix(".png"))
        row = {"setting": setting, "seconds": round(seconds, 1), **grade(paths)}
        print(row, flush=True)
        results.append(row)
    print(json.dumps({"layer": args.layer, "threads": 1, "results": results}))


if __name__ == "__main__":
    main()
