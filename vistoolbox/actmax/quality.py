"""How natural an optimised image is for its unit: MACO's *plausibility* (Fel et al. 2023), made exact.

Definitions (what goes into the record):

    plausibility(v)          = mean over the unit's top-k patches t of  cos(φ(crop(v)), φ(t))
    plausibility_centred(v)  = mean over t of  cos(φ(crop(v)) − μ, φ(t) − μ)

* ``t``: the unit's top-k natural patches from a mining run (``vis mine``), each the unit's
  receptive field at its maximum;
* ``crop(v)``: the centre of the visualization, one receptive field wide (at most the whole image),
  so both sides show what one unit sees;
* ``φ``: the judge network's features — by default the offline VGG16 (``hed``) ``relu5_3``,
  averaged over space, on the image resized to 128 px;
* ``μ``: the mean ``φ`` of a broad natural sample: the top-1 patches of (up to) 64 units of the same
  layer, spread over the layer.

``plausibility`` is MACO's score (cosine similarity to the most activating natural images in a
judge's feature space). ReLU features all lie in one orthant, so it has a high floor: natural
patches score about 0.97 against a unit's other top patches, uniform noise about 0.6 (VGG16
``conv4_3``, demo images), and other units' natural patches nearly as high as the unit's own.
``plausibility_centred`` removes the common natural-image component and so measures
*specificity*: a unit's own patches about 0.45, noise about −0.1, other units' patches near 0.

Limits: the judge sees only pooled features (no layout); with the default judge a VGG16 unit is
judged by its own network (MACO uses other networks; ours is the only offline trained one), so an
image can score by exciting the same features rather than by looking natural; the score depends
on the run's dataset and on k; units whose top patches are flat or padding score flat images high;
and like the activation it can be gamed (Geirhos et al. 2023): a second opinion, not proof.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import VisUsageError
from ..features.extractor import FeatureExtractor
from ..images import open_image, to_tensor
from ..models import LoadedModel, load_model
from ..rundir import open_run

__all__ = ["JUDGE_LAYER", "JUDGE_SIZE", "Judge", "centre_crop", "default_judge", "judge_features",
           "plausibility", "unit_plausibility"]

JUDGE_LAYER = "relu5_3"
JUDGE_SIZE = 128
CENTRE_UNITS = 64


@dataclass(frozen=True)
class Judge:
    """The network whose feature space plausibility is measured in."""

    model: LoadedModel
    layer: str = JUDGE_LAYER
    size: int = JUDGE_SIZE
    centre_units: int = CENTRE_UNITS  # how many units' top-1 patches make the centre μ

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.name, "weights": self.model.weights, "layer": self.layer, "size": self.size,
                "pool": "spatial mean", "centre": f"mean of the top-1 patches of up to {self.centre_units} units"}


def default_judge(model: LoadedModel | None = None) -> Judge:
    """VGG16 with the offline ``hed`` weights (`model` itself when it is that network)."""
    if model is not None and model.name == "vgg16" and model.weights == "hed":
        return Judge(model)
    return Judge(_hed_vgg16())


@lru_cache(maxsize=1)
def _hed_vgg16() -> LoadedModel:
    return load_model("vgg16", "hed", quiet=True)


@torch.no_grad()
def judge_features(judge: Judge, images: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """``[N, C]``: the judge layer's spatial mean for 0–1 images (each ``[3, h, w]``, any size)."""
    model = judge.model
    batch = torch.stack([F.interpolate(image[None].float(), size=(judge.size, judge.size), mode="bilinear",
                                       align_corners=False, antialias=True)[0].clamp(0, 1) for image in images])
    with FeatureExtractor(model, [judge.layer]) as fx:
        out = fx(model.preprocessing.normalize(batch.to(model.device)))[judge.layer]
    return out.flatten(2).mean(2).float().cpu()


def centre_crop(images: torch.Tensor, side: tuple[int, int]) -> torch.Tensor:
    """The central ``side`` (h, w) window of ``[N, 3, H, W]`` images (the whole image if smaller)."""
    h, w = images.shape[-2:]
    ch, cw = min(side[0], h), min(side[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return images[..., top:top + ch, left:left + cw]


def plausibility(features: torch.Tensor, references: torch.Tensor, centre: torch.Tensor | None = None) -> float:
    """Mean cosine similarity of one image's judge features ``[C]`` to its references ``[K, C]``,
    both minus `centre` when given."""
    if centre is not None:
        features, references = features - centre, references - centre
    a = F.normalize(features[None], dim=1)
    b = F.normalize(references, dim=1)
    return float((a @ b.T).mean())


def _load(path: Path) -> torch.Tensor:
    return to_tensor(open_image(path))[0]


_CENTRES: dict[tuple, torch.Tensor] = {}


def _centre(run_root: str, layer: str, judge: Judge) -> torch.Tensor:
    """μ for (run, layer, judge), computed once per process."""
    key = (run_root, layer, id(judge.model), judge.layer, judge.size, judge.centre_units)
    if key not in _CENTRES:
        _CENTRES[key] = _compute_centre(run_root, layer, judge)
    return _CENTRES[key]


def _compute_centre(run_root: str, layer: str, judge: Judge) -> torch.Tensor:
    run = open_run(run_root)
    units = run.units(layer)
    count = min(units, judge.centre_units)
    picks = sorted({round(i * (units - 1) / max(1, count - 1)) for i in range(count)})
    patches = [_load(run.file(p)) for p in (run.patch(layer, u, 0) for u in picks) if p.exists()]
    if not patches:
        raise VisUsageError(f"run {run_root!r} has no patches for layer {layer!r}; mine it with "
                            "`patches` on (the default)")
    return judge_features(judge, patches).mean(0)


def unit_plausibility(run: str | Path, layer: str, units: Sequence[int], images: torch.Tensor,
                      judge: Judge, k: int | None = None) -> dict[str, Any]:
    """Plausibility of ``images[i]`` (0–1) as a picture of ``units[i]`` of `layer`, judged against
    the unit's top-k patches in `run`: ``{"plausibility": [...], "plausibility_centred": [...],
    "judge": {...}, ...}`` (see the module doc)."""
    opened = open_run(run)
    canonical = opened.resolve(layer)
    rf = opened.layer_info(canonical).get("rf_size") or list(images.shape[-2:])
    centre = _centre(str(opened.root), canonical, judge)
    topk = opened.topk(canonical)["values"]
    scores, centred = [], []
    for image, unit in zip(images, units):
        ranks = range(min(k or topk.shape[1], topk.shape[1]))
        paths = [opened.patch(canonical, unit, r) for r in ranks]
        refs = [_load(opened.file(p)) for p in paths if p.exists()]
        if not refs:
            raise VisUsageError(f"run {str(run)!r} has no patches for unit {unit} of layer {layer!r}")
        feats = judge_features(judge, [centre_crop(image[None], tuple(rf))[0], *refs])
        scores.append(round(plausibility(feats[0], feats[1:]), 4))
        centred.append(round(plausibility(feats[0], feats[1:], centre), 4))
    return {"plausibility": scores, "plausibility_centred": centred, "judge": judge.describe(),
            "reference_run": str(opened.root), "reference_k": min(k or topk.shape[1], topk.shape[1]),
            "crop": list(rf)}
