"""``cam(model, image, layer, target=, method=)``: where in the image the network looked, and
through which units — one batch of images in one pass, any layout the layer table reads."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import VisError, VisUsageError
from ..features.layers import layer_layout
from ..images import open_image, to_tensor
from ..limits import whole
from ..models import LoadedModel, as_model
from ..rundir import Run, open_run, versions
from . import metrics as faith
from .methods import Method, check_method, contributions, principal
from .overlay import overlay
from .passes import Capture, Scorer, ablated_scores, first_pass, input_gradient
from .result import CamResult
from .targets import Target, deepest_layer, parse_target
from .units import check_place, peak, units_behind

__all__ = ["AUG_VIEWS", "cam", "load_images", "resolve_target"]

#: The views ``aug`` smoothing averages: (left-right flip, factor on the normalised input).
AUG_VIEWS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))

def load_images(model: LoadedModel, sources: Sequence[str | Path]) -> tuple[torch.Tensor | None, list[str],
                                                                              list[str]]:
    """Each image file resized and centre-cropped to the model's input: ``(batch [N, 3, S, S] or None,
    the sources read, one line per source that could not be read)``."""
    tensors, read, problems = [], [], []
    for source in sources:
        try:
            tensors.append(to_tensor(model.preprocessing.model_crop(open_image(source))))
            read.append(str(source))
        except (VisError, OSError) as exc:
            problems.append(f"image {str(source)!r}: {exc}")
    return (torch.cat(tensors) if tensors else None), read, problems


def _as_batch(model: LoadedModel, image: Any, names: Sequence[str] | None) -> tuple[torch.Tensor, list[str]]:
    if isinstance(image, torch.Tensor):
        batch = image if image.dim() == 4 else image.unsqueeze(0)
        if names is not None and len(names) != batch.shape[0]:
            raise ValueError("`sources` needs one name per image")
        return batch.float(), list(names) if names is not None else [f"tensor[{i}]" for i in range(batch.shape[0])]
    if isinstance(image, Image.Image):
        return to_tensor(model.preprocessing.model_crop(image)), ["PIL image"]
    sources = [image] if isinstance(image, (str, Path)) else list(image)
    batch, read, problems = load_images(model, sources)
    if problems:
        raise VisUsageError(problems[0])
    assert batch is not None
    return batch, read


def resolve_target(model: LoadedModel, target: Target) -> Target:
    """``top`` made concrete (the top-1 class where the model has logits, else the deepest layer's
    strongest unit), unit layers made canonical; ``class:N`` on a model without logits is a usage error."""
    if target.kind == "top":
        return Target("class") if model.has_classifier else Target("unit", None, deepest_layer(model))
    if target.kind == "class" and not model.has_classifier:
        raise VisUsageError(f"`target` {target} needs logits and model {model.name!r} ({model.weights}) has no "
                            "classifier; use unit:LAYER:N or top")
    if target.kind == "unit":
        return Target("unit", target.index, model.resolve(target.layer or ""))
    return target


def _weights(model: LoadedModel, method: Method, x: torch.Tensor, layer: str, target: Target, capture: Capture,
             batch: int) -> torch.Tensor | None:
    """The per-unit weights ``[N, K]`` of the perturbation methods (None for the others)."""
    acts, indices = capture.activations, capture.indices
    if method.perturbation == "ablate":
        ablated = ablated_scores(model, x, layer, target, indices, acts.shape[1], batch)
        base = capture.scores[:, None]
        return torch.where(base != 0, (base - ablated) / base, torch.zeros_like(ablated))  # a zero score: no weights
    if method.perturbation != "mask":
        return None
    scores = torch.empty(acts.shape[:2], device=x.device)
    with Scorer(model, target) as scorer:
        for i in range(x.shape[0]):
            for start in range(0, acts.shape[1], batch):
                up = F.interpolate(acts[i:i + 1, start:start + batch], size=x.shape[-2:], mode="bilinear",
                                   align_corners=True)[0]
                flat = up.flatten(1)
                low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
                masks = (up - low) / (high - low + 1e-8)
                picked = capture.indices[i:i + 1].expand(masks.shape[0])
                scores[i, start:start + masks.shape[0]] = scorer(x[i:i + 1] * masks[:, None], picked)
    return torch.softmax(scores, dim=1)


def _one_view(model: LoadedModel, method: Method, x: torch.Tensor, layer: str, target: Target, smooth: str | None,
              batch: int, indices: torch.Tensor | None) -> tuple[Capture, torch.Tensor]:
    capture = first_pass(model, x, layer, target, method.gradients, indices)
    if capture.activations.shape[-2:].numel() == 1:
        raise VisUsageError(f"layer {layer!r} has a single position (a global pool): a map needs a layer with "
                            "positions, e.g. the last conv or token layer before it")
    terms = contributions(method, capture.activations, capture.gradients,
                          _weights(model, method, x, layer, target, capture, batch))
    return capture, principal(terms) if smooth == "eigen" else terms


def cam(model: LoadedModel | str, image: Any, layer: str, target: str | Target | None = None,
        method: str = "gradcam", *, smooth: str | None = None, guided: bool = False,
        at: tuple[int, int] | None = None, run: str | Path | Run | None = None, metrics: bool = False,
        batch: int = 32, seed: int = 0, sources: Sequence[str] | None = None) -> CamResult:
    """The class-activation map of `target` at `layer` for one image or a batch.

    Args:
        model: a :class:`~vistoolbox.LoadedModel` (or a name, loaded with its default weights).
        image: an image path, a PIL image, a list of paths (one batch, one pass), or a 0–1 tensor
            ``[N, 3, S, S]`` at the model's input size. Files are resized and centre-cropped to it.
        layer: the layer (name or alias) whose units make the map; any layout with positions (CHW,
            channels-last, token grids with or without a class token); fc layers are a usage error.
        target: ``class:N`` (logit N), ``unit:LAYER:N`` (the channel mean of a unit) or ``top`` (default).
        method: gradcam, gradcam++, xgradcam, hirescam, layercam, eigencam, scorecam, ablationcam.
        smooth: None, ``aug`` (six augmented views averaged) or ``eigen`` (first principal component).
        guided: also guided Grad-CAM (guided backprop of the target × the upsampled map).
        at: (y, x) on the map where the units behind it are listed (default: each image's peak).
        run: a mining run of this model and layer: the units' montage and optimised image paths.
        metrics: Average Drop, Increase in Confidence and ROAD (class targets; :mod:`.metrics`).
        batch: copies per pass for scorecam and ablationcam.
        seed: the seed of ROAD's imputation noise.
        sources: what the record calls the images of a tensor `image` (e.g. their files).

    Returns:
        a :class:`CamResult`: ``maps`` (layer resolution, after the ReLU, unnormalised), ``upsampled``,
        the overlays as ``images``, ``contributions`` and the ``record``.

    Example:
        >>> result = cam(load_model("vgg16", "hed"), "photo.jpg", "conv5_3", target="unit:conv5_3:12")
        >>> result.save("cam.png")            # cam.png, cam.npz, cam.json
    """
    model = as_model(model)
    spec = check_method(method, smooth)
    batch = whole(batch, "batch")
    asked = parse_target(target) if target is None or isinstance(target, str) else target
    path = model.resolve(layer)
    layout = layer_layout(model, path)
    if not layout.spatial:
        raise VisUsageError(f"layer {layer!r} is fully connected (layout C): its units have no positions, so it has "
                            "no map; pick a conv or token layer before it")
    goal = resolve_target(model, asked)
    if metrics and goal.kind != "class":
        raise VisUsageError(f"`metrics` measure class probabilities and `target` {asked} is a unit; use class:N "
                            "or top on a model with logits")
    opened = open_run(run) if isinstance(run, (str, Path)) else run
    if opened is not None:
        opened.resolve(path)
    images, sources = _as_batch(model, image, sources)
    x = model.preprocessing.normalize(images.to(model.device))
    capture, terms = _one_view(model, spec, x, path, goal, smooth, batch, None)
    maps = terms.sum(1).clamp_min(0)
    if smooth == "aug":
        views = []
        for flip, factor in AUG_VIEWS:
            if (flip, factor) == (False, 1.0):  # the plain view, computed above
                views.append(maps)
                continue
            view = (x * factor).flip(-1) if flip else x * factor
            _, view_terms = _one_view(model, spec, view, path, goal, None, batch, capture.indices)
            view_map = view_terms.sum(1).clamp_min(0)
            views.append(view_map.flip(-1) if flip else view_map)
        maps = torch.stack(views).mean(0)
        terms = None
    size = tuple(maps.shape[-2:])
    places = [check_place(at, size) if at is not None else peak(m) for m in maps]  # type: ignore[arg-type]
    upsampled = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    guided_map = None
    if guided:
        guided_map = input_gradient(model, x, goal, capture.indices) * faith.scaled(upsampled)[:, None]
    per_image: list[dict[str, Any]] = []
    for i, source in enumerate(sources):
        behind = (units_behind(terms[i], places[i], run=opened, layer=path) if terms is not None else None)
        per_image.append({"source": source, "target_index": int(capture.indices[i]),
                          "score": float(capture.scores[i]), "peak": list(peak(maps[i])),
                          "map_max": float(maps[i].max()), "units_behind": behind})
    measured = _measure(model, goal, x, upsampled, capture.indices, per_image, seed) if metrics else None
    record = {**model.describe(), "kind": "cam", "layer": layer, "layer_name": path, "layout": str(layout),
              "target": str(asked), "target_resolved": str(goal) if goal.kind != "unit" or goal.index is not None
              else f"unit:{goal.layer}:strongest", "method": method,
              "settings": {"smooth": smooth, "guided": guided, "at": list(at) if at is not None else None,
                           "batch": batch, "metrics": metrics, "input_size": int(x.shape[-1])},
              "seed": seed, "versions": versions(), "map_size": list(size),
              "decomposition": spec.decomposition if terms is not None and smooth != "eigen" else (
                  "v_k * (C_k(y, x) - mean_k), the first principal component of the method's terms C"
                  if smooth == "eigen" else None),
              "run": str(opened.root) if opened is not None else None, "metrics": measured, "images": per_image}
    overlays = torch.stack([overlay(images[i].cpu(), upsampled[i].cpu()) for i in range(len(sources))])
    return CamResult(images=overlays, record=record, maps=maps.detach().cpu(), upsampled=upsampled.detach().cpu(),
                     guided=guided_map.cpu() if guided_map is not None else None,
                     contributions=terms.detach().cpu() if terms is not None else None)


def _measure(model: LoadedModel, goal: Target, x: torch.Tensor, upsampled: torch.Tensor, indices: torch.Tensor,
             per_image: list[dict[str, Any]], seed: int) -> dict[str, float]:
    """Average Drop, Increase in Confidence and ROAD into each image's record; returns the batch's means."""
    with Scorer(model, goal) as scorer:
        def probability(batch: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(scorer.logits(batch).float(), dim=1)
            return probs[torch.arange(batch.shape[0]), indices[images.to(indices.device)]]

        drop = faith.average_drop(probability, x, upsampled)
        road = faith.road(probability, x, upsampled, seed=seed)
    for i, row in enumerate(per_image):
        row["metrics"] = {"drop": drop["drop"][i], "increase": drop["increase"][i], "road_percents": road["percents"],
                          "road_morf_curve": road["morf"][i], "road_lerf_curve": road["lerf"][i],
                          "road_morf": road["road_morf"][i], "road_lerf": road["road_lerf"][i],
                          "road_gap": road["road_gap"][i]}
    return {"average_drop": sum(drop["drop"]) / len(per_image),
            "increase_in_confidence": sum(drop["increase"]) / len(per_image),
            "road_morf": sum(road["road_morf"]) / len(per_image), "road_lerf": sum(road["road_lerf"]) / len(per_image),
            "road_gap": sum(road["road_gap"]) / len(per_image), "road_noise": 0.01}
