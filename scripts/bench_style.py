"""Benchmark: our Gatys image optimisation vs pystiche's, interleaved step by step in one process.

Both sides use the same network (VGG16, offline ``hed`` weights, Caffe preprocessing), the same
layers (content relu4_2; style relu1_1..relu5_1, Gram/(H·W), MSE), the same loss weights and one
loss evaluation per step (pystiche's ``default_image_optimizer``: L-BFGS lr 1, ``max_iter=1``;
ours: L-BFGS with a strong-Wolfe line search whose trials count as steps). The loss is ours with
``normalize=True`` written as pystiche weights (content weight / mean(P²), layer weight
1/5 / mean(Ĝ²), the default style weight 10) — the initial losses of both sides are checked to agree. Both
final images are measured by our ``StyleLoss``.

pystiche is used as its users use it: its VGG parameters require gradients (it does not freeze
them). Steps alternate ours, pystiche, ours, …; per-step times are medians excluding the first.
Also reports s/step of ``transfer_style`` (what ``vis transfer`` runs) at 256 and 512 px.

Usage: python scripts/bench_style.py [--steps 50] [--sizes 256] [--transfer-sizes 256,512]
Last line of output: one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vistoolbox import load_model  # noqa: E402
from vistoolbox.style import DEFAULT_STYLE_LAYERS, StyleLoss, transfer_style  # noqa: E402
from vistoolbox.images import fit_longest, resize_tensor  # noqa: E402
from vistoolbox.style.optimize import optimize  # noqa: E402
from vistoolbox.style.transfer import as_image  # noqa: E402

from vistoolbox.style.transfer import DEFAULT_STYLE_WEIGHT as STYLE_WEIGHT  # noqa: E402
PAINTING = Path("/usr/share/backgrounds/mate/abstract/Elephants.jpg")


def import_pystiche():
    """pystiche 1.0.1 reads ``model_urls`` that torchvision ≥ 0.13 removed: put them back first."""
    import importlib

    for name in ("alexnet", "vgg"):
        module = importlib.import_module(f"torchvision.models.{name}")
        sys.modules[f"torchvision.models.{name}"].model_urls = {}  # type: ignore[attr-defined]
        if name == "vgg":
            module.model_urls = {a: "" for a in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",  # type: ignore
                                                 "vgg16_bn", "vgg19", "vgg19_bn")}
        else:
            module.model_urls = {"alexnet": ""}  # type: ignore[attr-defined]
    import pystiche  # noqa: F401
    import pystiche.enc
    import pystiche.loss
    import pystiche.optim

    return pystiche


class Preprocess(nn.Module):
    def __init__(self, preprocessing):
        super().__init__()
        self.preprocessing = preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.normalize(x)


def pystiche_criterion(ps, model, ours: StyleLoss, content: torch.Tensor, style: torch.Tensor):
    """pystiche's multi-layer encoder on a copy of the same VGG16 and the same (normalised) loss."""
    names = {path: alias for alias, path in model.aliases.items() if alias[:4] in ("conv", "relu", "pool")
             and "_" in alias or alias.startswith("pool")}
    features = copy.deepcopy(model.module.features).requires_grad_(True)  # pystiche does not freeze
    modules = [("preprocessing", Preprocess(model.preprocessing))]
    modules += [(names[f"features.{i}"], layer) for i, layer in enumerate(features)]
    mle = ps.enc.MultiLayerEncoder(modules)
    content_loss = ps.loss.FeatureReconstructionLoss(
        mle.extract_encoder(ours.content_layer), score_weight=float(1.0 / ours.content_scale))
    layers = list(ours.layer_weights)
    weights = [float(ours.layer_weights[n] / ours.style_scales[n]) for n in layers]
    style_loss = ps.loss.MultiLayerEncodingLoss(
        mle, layers, lambda encoder, w: ps.loss.GramLoss(encoder, score_weight=w), layer_weights=weights,
        score_weight=STYLE_WEIGHT)
    criterion = ps.loss.PerceptualLoss(content_loss, style_loss)
    criterion.set_content_image(content)
    criterion.set_style_image(style)
    return criterion


def measure(ours: StyleLoss, image: torch.Tensor) -> float:
    with torch.no_grad():
        return float(ours(image)[0])


def bench_case(ps, model, content_full, style_full, size: int, steps: int) -> dict:
    shape = fit_longest(tuple(content_full.shape[-2:]), size)
    content = resize_tensor(content_full, shape)
    style = resize_tensor(style_full, fit_longest(tuple(style_full.shape[-2:]), size))
    ours = StyleLoss(model, DEFAULT_STYLE_LAYERS, "relu4_2", "gram", 1.0, STYLE_WEIGHT, 0.0)
    ours.set_style([style])
    ours.set_content(content)
    criterion = pystiche_criterion(ps, model, ours, content, style)
    theirs = content.clone().contiguous()
    opt = ps.optim.default_image_optimizer(theirs)
    with torch.no_grad():
        start_ours, start_theirs = measure(ours, content), float(criterion(content.clone()).aggregate(0))
    assert abs(start_ours - start_theirs) <= 1e-3 * abs(start_ours), (start_ours, start_theirs)

    def closure() -> float:
        opt.zero_grad()
        loss = criterion(theirs)
        loss.backward()
        return float(loss)

    ours_times: list[float] = []
    theirs_times: list[float] = []
    mark = [time.perf_counter()]

    def on_step(step: int, _losses: dict, _x: torch.Tensor) -> None:
        ours_times.append(time.perf_counter() - mark[0])
        t0 = time.perf_counter()
        opt.step(closure)  # one pystiche step, interleaved
        theirs_times.append(time.perf_counter() - t0)
        mark[0] = time.perf_counter()

    result, _curves, _ = optimize(ours, content, steps, "lbfgs", None, on_step)
    ours_final, theirs_final = measure(ours, result), measure(ours, theirs.detach())
    ours_s = statistics.median(ours_times[1:])
    theirs_s = statistics.median(theirs_times[1:])
    ratios = [b / a for a, b in zip(ours_times[1:], theirs_times[1:])]
    return {"size": size, "shape": list(shape), "steps": steps, "ours_s_per_step": ours_s,
            "pystiche_s_per_step": theirs_s, "speedup": theirs_s / ours_s,
            "median_step_ratio": statistics.median(ratios), "ours_final_loss": ours_final,
            "pystiche_final_loss": theirs_final, "loss_ratio": ours_final / theirs_final,
            "initial_loss": start_ours}


def bench_transfer(model, content, style, size: int, steps: int) -> dict:
    stamps: list[float] = []
    t0 = time.perf_counter()
    record = transfer_style(model, content, [style], size=size, steps=steps,
                            progress=lambda info: stamps.append(time.perf_counter())).record
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"size": size, "shape": record["stages"][0]["size"], "steps": steps,
            "s_per_step": statistics.median(gaps), "total_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sizes", default="256")
    parser.add_argument("--contents", default="chelsea,astronaut", help="scikit-image content images")
    parser.add_argument("--transfer-sizes", default="256,512")
    parser.add_argument("--transfer-steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ps = import_pystiche()
    model = load_model("vgg16", "hed", quiet=True)
    from skimage import data

    def sk(name: str) -> torch.Tensor:
        return torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255)[None]

    style = as_image(PAINTING) if PAINTING.is_file() else sk("coffee")
    cases = []
    names = [n for n in args.contents.split(",") if n]
    for name, size in itertools.product(names, [int(s) for s in args.sizes.split(",") if s]):
        case = {"content": name, **bench_case(ps, model, sk(name), style, size, args.steps)}
        print(f"{name} {size}px: ours {case['ours_s_per_step']:.3f} s/step, pystiche {case['pystiche_s_per_step']:.3f} "
              f"s/step, speedup {case['speedup']:.2f}x; final loss ours {case['ours_final_loss']:.4g} vs "
              f"pystiche {case['pystiche_final_loss']:.4g}", file=sys.stderr)
        cases.append(case)
    content = sk("chelsea")
    transfer = []
    for size in [int(s) for s in args.transfer_sizes.split(",") if s]:
        row = bench_transfer(model, content, style, size, args.transfer_steps)
        print(f"transfer_style {size}px: {row['s_per_step']:.3f} s/step", file=sys.stderr)
        transfer.append(row)
    print(json.dumps({"cases": cases, "vis_transfer": transfer, "threads": args.threads,
                      "torch": torch.__version__, "style_image": str(PAINTING) if PAINTING.is_file() else "coffee"}))


if __name__ == "__main__":
    main()
