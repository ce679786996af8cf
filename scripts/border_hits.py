"""Where do a layer's top-9 hits lie, and how much of that is the convolutions' zero padding?

For every image and unit, the spatial maximum over the positions each position policy allows
(``min_inside``: the share of a position's receptive field inside the image), then the top-9 images
per unit (value descending, lower index first: the miner's rule). Reports per layer and policy:

* ``ring``: % of top-9 hits in the outer ring of the feature map (``ring_base``: the ring's share of
  positions), ``eligible_ring`` / ``eligible_ring_base``: the same for the ring of the eligible region;
* ``padding``: mean % of a hit's receptive field that lies outside the image (the patch's padding);
* ``units_all_ring``: units whose 9 hits all lie on the ring.

Controls: ``--weights random`` (untrained), ``--padding reflect|replicate`` (a copy of the model whose
convolutions pad so), and ``--context N``: windows of (224 + 2N)² px cut from photos whose centre
224² is the crop; the crop alone (zero padding at its edge) against the big window's map cut to the
crop's positions (the network saw real content beyond the edge). ``agreement``: % of each unit's
top-9 images that are the same in both.

Usage: python scripts/border_hits.py [--dataset DIR | --context 96 [--photos DIR]] [--weights hed]
       [--padding zeros] [--min-inside 0,0.5,0.75,0.8,0.85,0.9,1] [--layers conv3_3,conv4_3,conv5_3]
The last line of output is one JSON object. One thread; about 3 min per 300 images on a quiet core.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import load_model  # noqa: E402
from vistoolbox.features.extractor import FeatureExtractor  # noqa: E402
from vistoolbox.features.layers import layer_table  # noqa: E402
from vistoolbox.features.receptive import field_of, inside_fraction  # noqa: E402
from vistoolbox.mining.datasets import Transform, discover_images  # noqa: E402
from vistoolbox.mining.positions import eligible_mask  # noqa: E402

K = 9


def dataset_pixels(folder: str, size: int) -> torch.Tensor:
    """uint8 [N, 3, size, size]: the images as ``vis mine`` feeds them (shorter side 256/224·size, centre crop)."""
    images = discover_images(folder)
    transform = Transform(round(size * 256 / 224), size)
    return torch.stack([transform(images.absolute(i)) for i in range(len(images))])


def context_windows(photos: str | None, size: int, margin: int) -> torch.Tensor:
    """uint8 [N, 3, size + 2·margin, …]: per photo a 2×2 grid of windows whose centre size² px is a crop
    of 0.4 × the photo's shorter side (the demo's sources, plus the photos in `photos`)."""
    from vistoolbox.demo import demo_sources

    arrays = [array for _, array in demo_sources()]
    if photos:
        images = discover_images(photos)
        arrays += [np.asarray(Image.open(images.absolute(i)).convert("RGB")) for i in range(len(images))]
    big = size + 2 * margin
    out = []
    for array in arrays:
        height, width = array.shape[:2]
        side = 0.4 * min(height, width) * big / size
        image = Image.fromarray(array)
        for top in np.linspace(0, height - side, 2):
            for left in np.linspace(0, width - side, 2):
                window = image.resize((big, big), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
                out.append(torch.from_numpy(np.asarray(window).copy()).permute(2, 0, 1))
    return torch.stack(out)


def maxima(module, model, paths: dict[str, str], entries: dict, pixels: torch.Tensor, policies: list[float],
           size: int, cut: int | None) -> dict:
    """{(layer, F): (values [N, U], flat positions [N, U])} over the eligible positions of each policy;
    `cut` = margin: the maps of big windows cut to the centre crop's positions."""
    masks = {(layer, f): eligible_mask(entries[layer], size, f) for layer in paths for f in policies}
    found: dict = {key: ([], []) for key in masks}
    with FeatureExtractor(module, list(paths.values())) as fx, torch.no_grad():
        for start in range(0, pixels.shape[0], 8):
            feats = fx(model.preprocessing.normalize(pixels[start:start + 8].float().div(255)))
            for layer, path in paths.items():
                act = feats[path]
                if cut is not None:
                    stride, side = entries[layer]["rf_stride"][0], entries[layer]["shape"][1]
                    act = act[:, :, cut // stride: cut // stride + side, cut // stride: cut // stride + side]
                flat = act.flatten(2)
                for f in policies:
                    mask = masks[(layer, f)]
                    masked = flat if mask is None else flat.masked_fill(~torch.from_numpy(mask).flatten(), -float("inf"))
                    values, positions = masked.max(2)
                    found[(layer, f)][0].append(values.numpy())
                    found[(layer, f)][1].append(positions.numpy())
    return {key: (np.concatenate(v), np.concatenate(p)) for key, (v, p) in found.items()}


def top9(values: np.ndarray) -> np.ndarray:
    return np.argsort(-values, axis=0, kind="stable")[:K]


def ring_of(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    return mask & ~(padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])


def describe(values: np.ndarray, positions: np.ndarray, entry: dict, size: int, f: float) -> dict:
    side = entry["shape"][1]
    fraction = inside_fraction(field_of(entry), (side, side), (size, size))
    mask = eligible_mask(entry, size, f)
    eligible = np.ones((side, side), bool) if mask is None else mask
    ring, eligible_ring = ring_of(np.ones((side, side), bool)), ring_of(eligible)
    hits = np.take_along_axis(positions, top9(values), 0)
    y, x = hits // side, hits % side
    pct = lambda v: round(100 * float(v), 1)  # noqa: E731
    return {"eligible": int(eligible.sum()), "positions": side * side, "ring": pct(ring[y, x].mean()),
            "ring_base": pct(ring.mean()), "eligible_ring": pct(eligible_ring[y, x].mean()),
            "eligible_ring_base": pct(eligible_ring.sum() / eligible.sum()),
            "padding": pct((1 - fraction[y, x]).mean()), "units_all_ring": int(ring[y, x].all(0).sum()),
            "units": int(values.shape[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="folder of images, mined as vis mine does")
    parser.add_argument("--context", type=int, default=None, help="margin in px: crop alone vs cut from a bigger window")
    parser.add_argument("--photos", default=None, help="with --context: more photos besides the demo's sources")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--padding", default="zeros", choices=["zeros", "reflect", "replicate"])
    parser.add_argument("--min-inside", default="0,0.5,0.75,0.8,0.85,0.9,1")
    parser.add_argument("--layers", default="conv3_3,conv4_3,conv5_3")
    args = parser.parse_args()
    if (args.dataset is None) == (args.context is None):
        parser.error("give --dataset or --context")
    torch.set_num_threads(1)
    model = load_model("vgg16", args.weights, seed=0, quiet=True)
    module = model.module
    if args.padding != "zeros":
        module = copy.deepcopy(module)
        for conv in module.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.padding_mode = args.padding
    size = model.input_size
    paths = {name: model.resolve(name) for name in args.layers.split(",")}
    rows = {row.name: row.to_dict() for row in layer_table(model, size, names=list(paths.values()))}
    entries = {name: rows[path] for name, path in paths.items()}
    policies = [float(v) for v in args.min_inside.split(",")]
    report: dict = {"weights": args.weights, "padding": args.padding, "layers": {}}
    if args.dataset:
        pixels = dataset_pixels(args.dataset, size)
        found = maxima(module, model, paths, entries, pixels, policies, size, None)
        report.update(dataset=args.dataset, images=int(pixels.shape[0]))
        for layer in paths:
            report["layers"][layer] = {str(f): describe(*found[(layer, f)], entries[layer], size, f) for f in policies}
    else:
        windows = context_windows(args.photos, size, args.context)
        alone = windows[:, :, args.context:args.context + size, args.context:args.context + size]
        crop = maxima(module, model, paths, entries, alone, policies, size, None)
        cut = maxima(module, model, paths, entries, windows, policies, size, args.context)
        report.update(context=args.context, images=int(windows.shape[0]))
        for layer in paths:
            report["layers"][layer] = {}
            for f in policies:
                a, b = top9(crop[(layer, f)][0]), top9(cut[(layer, f)][0])
                same = np.mean([len(set(a[:, u]) & set(b[:, u])) / K for u in range(a.shape[1])])
                report["layers"][layer][str(f)] = {
                    "crop": describe(*crop[(layer, f)], entries[layer], size, f),
                    "cut": describe(*cut[(layer, f)], entries[layer], size, f),
                    "agreement": round(100 * float(same), 1)}
    for layer, by_policy in report["layers"].items():
        print(layer, json.dumps(by_policy), file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
