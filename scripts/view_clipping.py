"""How many pixels of a view picture are clipped: the old contrast (the 99.5th percentile of |gradient|
over the whole 224² map, then cut to the field) against the new one (``view_patch``: the 99.5th
percentile of the field's pixels). A pixel counts as clipped when any channel of the 8-bit picture is
0 or 255; only the image part of the field is counted (the padding is grey in both).

Usage: python scripts/view_clipping.py RUN [--units 8] [--modes deconv,backprop,guided]
The views of the first `--units` units of every conv layer of a mined run (their top-k hits), computed
with the run's model. The last line of output is one JSON object: per layer, the median and the
maximum share of clipped pixels over all views, old and new.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import load_model, open_run  # noqa: E402
from vistoolbox.features.receptive import field_of, unit_box  # noqa: E402
from vistoolbox.features.views import batch_views, parse_modes, view_patch  # noqa: E402
from vistoolbox.images import normalize_visual, to_pil  # noqa: E402
from vistoolbox.mining.datasets import ImageList, Transform  # noqa: E402


def clipped(picture: torch.Tensor, box) -> float:  # noqa: ANN001
    """Share of the image part's pixels with a channel at 0 or 255 (8-bit, as the PNG stores it)."""
    pixels = np.asarray(to_pil(picture)).astype(int)
    top, left = box.pad_top, box.pad_left
    inner = pixels[top:top + box.bottom - box.top, left:left + box.right - box.left]
    return float(((inner == 0) | (inner == 255)).any(-1).mean()) if inner.size else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--modes", default="deconv,backprop,guided")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = open_run(args.run)
    manifest = run.manifest
    model = load_model(manifest["model"], manifest["weights"], seed=manifest.get("seed") or 0,
                       input_size=manifest["input_size"], quiet=True)
    pre, dataset = manifest["preprocessing"], manifest["dataset"]
    images = ImageList(Path(dataset["root"]), run.images, dataset.get("kind", "folder"))
    transform = Transform(int(pre["resize"]), int(pre["crop"]))
    modes = parse_modes(args.modes)
    report = {"run": str(run.root), "units": args.units, "modes": modes, "layers": {}}
    for layer in run.layers:
        field = field_of(run.layer_info(layer))
        if field.is_global:
            continue
        top = run.topk(layer)
        old, new = [], []
        for unit in range(min(args.units, run.units(layer))):
            ranks = [r for r in range(top["image_index"].shape[1]) if top["image_index"][unit, r] >= 0]
            pictures = torch.stack([transform(images.absolute(int(top["image_index"][unit, r]))) for r in ranks]).float() / 255
            ys, xs = [int(top["y"][unit, r]) for r in ranks], [int(top["x"][unit, r]) for r in ranks]
            views = batch_views(model, pictures, layer, [unit] * len(ranks), ys, xs, modes)
            for mode in modes:
                for i, (y, x) in enumerate(zip(ys, xs)):
                    box = unit_box(field, y, x, (transform.crop, transform.crop))
                    whole = normalize_visual(views[mode][i].cpu())[:, box.top:box.bottom, box.left:box.right]
                    old_picture = torch.full((3, *box.full_size), 0.5)
                    old_picture[:, box.pad_top:box.pad_top + whole.shape[1], box.pad_left:box.pad_left + whole.shape[2]] = whole
                    old.append(clipped(old_picture, box))
                    new.append(clipped(view_patch(views[mode][i], box), box))
        pct = lambda values, f: round(100 * float(f(values)), 2)  # noqa: E731
        report["layers"][run.short_name(layer)] = {
            "views": len(new), "old_median": pct(old, np.median), "old_max": pct(old, np.max),
            "new_median": pct(new, np.median), "new_max": pct(new, np.max)}
        print(run.short_name(layer), json.dumps(report["layers"][run.short_name(layer)]), file=sys.stderr, flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
