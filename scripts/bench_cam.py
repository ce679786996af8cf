"""Benchmark: ``vistoolbox.cam`` against pytorch-grad-cam (``pip install grad-cam``) in one process, one
thread, the two sides alternating call by call (medians):

* per method, the correlation of the two upsampled maps (mean over the images; ≥ 0.999 where the
  method is the same maths) and the time per image at batch 1 and batch 16, with the ratio
  ``peer / vistoolbox`` (> 1: vistoolbox faster);
* cases: ``resnet50`` (layer4, the top-1 class), ``vit_b_16`` (the last block's ln_1, the top-1 class;
  pytorch-grad-cam gets its reshape_transform) with random seeded weights (the ViT's zero-initialised
  head drawn at random: zero logits have zero gradients), and ``hed`` (VGG16 with the offline hed
  weights, conv4_3, unit 12 of pool5 — the peer's target is that unit's channel mean of the output).

Usage: python scripts/bench_cam.py [--cases resnet50,vit_b_16,hed] [--methods gradcam,…] [--batches 1,16]
       [--repeats 2] [--perturb-batches 1] [--perturb-repeats 1] [--perturb-cases resnet50,vit_b_16] [--threads 1]
ScoreCAM and AblationCAM run a pass per unit (2048 for resnet50's layer4), so they run at
``--perturb-batches`` only, on ``--perturb-cases``. The peer gets its model with parameters that require grad, as a user hands
it one (it needs them); vistoolbox's are frozen. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import VisError, cam, load_model  # noqa: E402

PEERS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
         "layercam": "LayerCAM", "eigencam": "EigenCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM"}
PERTURBING = ("scorecam", "ablationcam")


def photos(count: int, size: int) -> torch.Tensor:
    """`count` 0–1 images of `size` px: scikit-image's photos, centre-cropped, then mirrored to fill."""
    from PIL import Image
    from skimage import data

    from vistoolbox.images import resize_center_crop, to_tensor

    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
             "brick")
    tiles = [to_tensor(resize_center_crop(Image.fromarray(getattr(data, n)()).convert("RGB"), size, size))
             for n in names]
    tiles += [t.flip(-1) for t in tiles]
    return torch.cat([tiles[i % len(tiles)] for i in range(count)])


def build(case: str, seed: int):
    """(model, layer, our target, peer targets(indices), reshape_transform, ablation layer)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if case == "hed":
        model = load_model("vgg16", "hed", quiet=True)
        return model, "conv4_3", "unit:pool5:12", lambda idx: [lambda out: out[12].mean()] * len(idx), None, None
    model = load_model(case, "random", seed=seed)
    if case.startswith("vit"):
        torch.manual_seed(seed)
        torch.nn.init.normal_(model.module.heads.head.weight, std=0.02)
        grid = model.module.image_size // model.module.patch_size

        def reshape(t):
            return t[:, 1:, :].reshape(t.shape[0], grid, grid, t.shape[2]).permute(0, 3, 1, 2)

        from pytorch_grad_cam.ablation_layer import AblationLayerVit

        return (model, f"encoder.layers.encoder_layer_{len(model.module.encoder.layers) - 1}.ln_1", "top",
                lambda idx: [ClassifierOutputTarget(int(i)) for i in idx], reshape, AblationLayerVit())
    return model, "layer4", "top", lambda idx: [ClassifierOutputTarget(int(i)) for i in idx], None, None


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    values = [float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) for x, y in zip(a, b) if x.std() > 0 and y.std() > 0]
    return round(float(np.mean(values)), 5) if values else None  # None: a map is flat on every image


def bench_case(case: str, methods: list[str], batches: list[int], repeats: int, perturb_batches: list[int],
               perturb_repeats: int, seed: int, perturb_cases: list[str]) -> list[dict]:
    import pytorch_grad_cam

    model, layer, target, peer_targets, reshape, ablation = build(case, seed)
    peer_module = copy.deepcopy(model.module).requires_grad_(True)
    peer_layer = peer_module.get_submodule(model.resolve(layer))
    images = photos(max(batches + perturb_batches), model.input_size)
    rows = []
    for method in [m for m in methods if m not in PERTURBING or case in perturb_cases]:
        extra = {"reshape_transform": reshape} if reshape else {}
        if method == "ablationcam" and ablation is not None:
            extra["ablation_layer"] = ablation
        peer = getattr(pytorch_grad_cam, PEERS[method])(model=peer_module, target_layers=[peer_layer], **extra)
        if method in PERTURBING:
            peer.batch_size = 32
        sizes = perturb_batches if method in PERTURBING else batches
        rounds = perturb_repeats if method in PERTURBING else repeats
        row: dict = {"case": case, "layer": layer, "target": target, "method": method}
        for size in sizes:
            batch = images[:size]
            x = model.preprocessing.normalize(batch)
            ours_t, theirs_t = [], []
            ours = cam(model, batch, layer, target=target, method=method, batch=32)  # warm-up, and the indices
            indices = [r["target_index"] for r in ours.record["images"]]
            targets = peer_targets(indices)
            peer(input_tensor=x, targets=targets)
            for _ in range(rounds):
                start = time.perf_counter()
                ours = cam(model, batch, layer, target=target, method=method, batch=32)
                ours_t.append((time.perf_counter() - start) / size)
                start = time.perf_counter()
                theirs = peer(input_tensor=x, targets=targets)
                theirs_t.append((time.perf_counter() - start) / size)
            row[f"batch{size}"] = {
                "vistoolbox_s_per_image": round(statistics.median(ours_t), 4),
                "peer_s_per_image": round(statistics.median(theirs_t), 4),
                "ratio": round(statistics.median(t / o for t, o in zip(theirs_t, ours_t)), 2),
                "correlation": correlation(ours.upsampled.numpy(), theirs)}
            print(json.dumps({**{k: row[k] for k in ("case", "method")}, f"batch{size}": row[f"batch{size}"]}),
                  file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="resnet50,vit_b_16,hed")
    parser.add_argument("--methods", default=",".join(PEERS))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--perturb-batches", default="1")
    parser.add_argument("--perturb-repeats", type=int, default=1)
    parser.add_argument("--perturb-cases", default="resnet50,vit_b_16", help="cases that run scorecam/ablationcam")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    rows, skipped = [], {}
    for case in [c for c in args.cases.split(",") if c]:
        try:
            rows += bench_case(case, methods, [int(b) for b in args.batches.split(",")], args.repeats,
                               [int(b) for b in args.perturb_batches.split(",")], args.perturb_repeats, args.seed,
                               args.perturb_cases.split(","))
        except VisError as exc:  # the hed weights unavailable offline
            skipped[case] = str(exc)
    import pytorch_grad_cam  # noqa: F401

    from importlib.metadata import version

    print(json.dumps({"threads": args.threads, "torch": torch.__version__, "grad_cam": version("grad-cam"),
                      "rows": rows, "skipped": skipped}))


if __name__ == "__main__":
    main()
