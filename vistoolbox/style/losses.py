"""``StyleLoss``: content, style and total-variation terms from one feature-extractor pass.

The object is reusable by anything that optimises images or image generators (Gatys image
optimisation here, a feed-forward stylizer elsewhere): set the style once (targets are computed
once and kept), set the content (per image or per batch), then call it on 0–1 RGB images.

Terms (``x`` is the image in 0–1 RGB, ``F`` features of ``x``, ``P`` of the content image):

* content: ``mean((F − P)²)`` at the content layer;
* style: ``Σ_l w_l · L_stat(F_l, target_l)`` with layer weights ``w_l`` normalised to sum 1 and
  the statistic's loss (see :mod:`vistoolbox.style.stats`);
* tv: ``mean((x[i+1,j] − x[i,j])²) + mean((x[i,j+1] − x[i,j])²)`` on the 0–1 image.

With ``normalize=True`` (default) every content/style term is divided by the mean square of its
target (``mean(P²)``, ``mean(Ĝ²)``, …), making each a relative error that starts near 1 whatever
the model's feature scale (the ``hed`` VGG16 takes 0–255 input and has features ~255× larger than
a 0–1 model's). The weights below assume this. ``normalize=False`` gives the raw formulas above
(pystiche's and the Gatys notebook's ``Gram/(H·W)`` + MSE), used by the benchmark.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from ..errors import VisUsageError
from ..features.extractor import FeatureExtractor
from ..limits import MAX_WEIGHT, weight
from ..models import LoadedModel
from .stats import Statistic, get_statistic

__all__ = ["DEFAULT_CONTENT_LAYER", "DEFAULT_STYLE_LAYERS", "POOLINGS", "StyleLoss", "check_style_layers",
           "layer_weights", "parse_layer_weights", "total_variation", "with_pooling"]

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYER = "relu4_2"
POOLINGS = ("max", "avg")


def model_defaults(model: LoadedModel, style_layers: Sequence[str] | Mapping[str, float] | None,
                   content_layer: str | None) -> tuple[Sequence[str] | Mapping[str, float], str | None]:
    """The default style and content layers, for this model: VGG's names where they all resolve,
    otherwise up to five of the model's ReLUs with a feature map, spread from the first to the last,
    and the ReLU three quarters deep for content (alexnet: relu1…relu5, content relu4). Layers the
    caller chose are returned as they are."""
    use_style = style_layers is None or tuple(style_layers) == DEFAULT_STYLE_LAYERS
    use_content = content_layer == DEFAULT_CONTENT_LAYER
    if not (use_style or use_content) or _all_resolve(model, [*DEFAULT_STYLE_LAYERS, DEFAULT_CONTENT_LAYER]):
        return (DEFAULT_STYLE_LAYERS if style_layers is None else style_layers), content_layer
    from ..features.layers import layer_table

    relus = [row.name for row in layer_table(model) if row.type == "ReLU" and row.layout == "CHW"]
    if not relus:
        relus = [row.name for row in layer_table(model) if row.type == "Conv2d" and row.layout == "CHW"]
    if not relus:
        raise VisUsageError(f"model {model.name!r} has no ReLU or conv layer with a feature map for style losses; "
                            "give `style_layers` and `content_layer`")
    picks = sorted({round(i * (len(relus) - 1) / 4) for i in range(5)}) if len(relus) > 5 else range(len(relus))
    style = [relus[i] for i in picks] if use_style else style_layers
    content = relus[round(0.75 * (len(relus) - 1))] if use_content else content_layer
    return style, content


def _all_resolve(model: LoadedModel, names: Sequence[str]) -> bool:
    try:
        for name in names:
            model.resolve(name)
    except (ValueError, KeyError):
        return False
    return True


def with_pooling(model: LoadedModel, pooling: str, channels_last: bool = False) -> LoadedModel:
    """``max``: the model itself. ``avg``: a copy whose MaxPool2d layers are AvgPool2d with the
    same kernel, stride, padding and ceil mode (Gatys et al.). With `channels_last`, a copy whose
    weights are stored NHWC (faster convolutions on CPU). The shared model is never touched."""
    if pooling not in POOLINGS:
        raise VisUsageError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
    if pooling == "max" and not channels_last:
        return model
    module = copy.deepcopy(model.module)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    for parent in module.modules() if pooling == "avg" else ():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
    return dataclasses.replace(model, module=module)


def check_style_layers(model: LoadedModel, layers: Iterable[str]) -> None:
    """Style statistics need feature maps: a layer whose output is not channels × height × width
    (an fc layer, a token sequence) is a usage error that lists the layers that would work."""
    from ..features.layers import layer_table

    rows = {row.name: row for row in layer_table(model)}
    maps = [name for name, row in rows.items() if row.layout == "CHW" and row.aliases] or [
        name for name, row in rows.items() if row.layout == "CHW"]
    for name in layers:
        row = rows.get(model.resolve(name))
        if row is None or row.layout != "CHW":
            shown = [(rows[path].aliases or [path])[0] for path in maps]
            raise VisUsageError(f"style layer {name!r} has no feature map (layout {row.layout if row else None}, "
                                f"shape {row.shape if row else None}); style layers must be conv layers, e.g. "
                                f"{', '.join(shown[:8])}")


def layer_weights(layers: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """Layer → weight, normalised to sum 1 (a plain list gets equal weights)."""
    weights = dict(layers) if isinstance(layers, Mapping) else {name: 1.0 for name in layers}
    if not weights:
        raise VisUsageError("at least one style layer is needed")
    for name, value in weights.items():
        _check_weight(value, "style_layers", f"{name}:{value}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise VisUsageError(f"style layer weights must be ≥ 0 and not all 0, got {weights}")
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


def parse_layer_weights(text: str, param: str = "style_layers") -> dict[str, float]:
    """``"relu1_1,relu2_1:0.5"`` → ``{"relu1_1": 1.0, "relu2_1": 0.5}`` (unnormalised); a weight
    that is not a number in [0, :data:`~vistoolbox.limits.MAX_WEIGHT`] is a usage error naming `param`."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition(":")
        try:
            out[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise VisUsageError(f"bad layer weight in `{param}` {item!r}; write LAYER or LAYER:WEIGHT") from None
        _check_weight(out[name.strip()], param, item)
    if not out:
        raise VisUsageError(f"no layers in `{param}` {text!r}")
    return out


def _check_weight(value: float, param: str, item: str) -> None:
    """A layer weight must be finite and in [0, MAX_WEIGHT]; the message names `param` and the item."""
    try:
        weight(value, param)
    except VisUsageError as exc:
        raise VisUsageError(f"{exc.args[0]} (layer weight {item!r}; write LAYER:WEIGHT with a weight in "
                            f"[0, {MAX_WEIGHT:g}])") from None


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Squared total variation: mean squared difference of vertical plus horizontal neighbours."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return dy + dx


class StyleLoss:
    """Content + style + TV loss of 0–1 RGB images, one truncated forward pass per call.

    Args:
        model: the network (``load_model(...)``); its preprocessing is applied inside.
        style_layers: names/aliases, or ``{name: weight}``; weights are normalised to sum 1.
        content_layer: layer of the content term, or ``None`` (texture synthesis).
        statistic: ``gram`` | ``mean_std`` | ``histogram`` or a :class:`Statistic`.
        content_weight, style_weight, tv_weight: multipliers of the three terms.
        pooling: ``max`` (the model as is) or ``avg`` (a copy with average pooling).
        normalize: divide each content/style term by its target's mean square (see module doc).
        channels_last: run a private NHWC copy of the network (about 1.3× faster per step on CPU;
            results differ from the NCHW model only by float rounding).

    Example:
        >>> loss = StyleLoss(model, content_layer="relu4_2")
        >>> loss.set_style([style])             # [1, 3, H, W] 0–1; targets computed once
        >>> loss.set_content(content)
        >>> total, terms = loss(image)          # terms: content, style:relu1_1 …, style, tv, total
    """

    def __init__(self, model: LoadedModel, style_layers: Sequence[str] | Mapping[str, float] = DEFAULT_STYLE_LAYERS,
                 content_layer: str | None = DEFAULT_CONTENT_LAYER, statistic: str | Statistic = "gram",
                 content_weight: float = 1.0, style_weight: float = 1.0, tv_weight: float = 0.0,
                 pooling: str = "max", normalize: bool = True, channels_last: bool = True):
        self.model = with_pooling(model, pooling, channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.pooling = pooling
        self.statistic = get_statistic(statistic)
        style_layers, content_layer = model_defaults(model, style_layers, content_layer)
        self.layer_weights = layer_weights(style_layers)
        self.content_layer = content_layer
        for name, value in (("content_weight", content_weight), ("style_weight", style_weight),
                            ("tv_weight", tv_weight)):
            weight(value, name)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.normalize = normalize
        for name in [*self.layer_weights, *([content_layer] if content_layer else [])]:
            self.model.resolve(name)  # unknown names → usage error listing the valid ones
        check_style_layers(model, self.layer_weights)
        self.layers = list(dict.fromkeys([*self.layer_weights, *([content_layer] if content_layer else [])]))
        self.extractor = FeatureExtractor(self.model, self.layers)
        self.device = self.model.device
        self.style_targets: dict[str, torch.Tensor] = {}
        self.style_scales: dict[str, torch.Tensor] = {}
        self.content_target: torch.Tensor | None = None
        self.content_scale: torch.Tensor | None = None

    # ------------------------------------------------------------------ targets
    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a 0–1 image batch at every loss layer (one pass, stops at the deepest); an
        image too small for the layers is a usage error naming `size`."""
        x = self.model.preprocessing.normalize(image.to(self.device))
        try:
            return self.extractor(x.contiguous(memory_format=self.memory_format))
        except RuntimeError as exc:
            if "memory" in str(exc):
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise VisUsageError(f"an image of {image.shape[-1]}x{image.shape[-2]} px is too small for the layers "
                                f"{', '.join(self.layers)} of model {self.model.name!r} ({reason}); use a larger "
                                f"`size` (e.g. {self.model.input_size}) or earlier layers") from None

    @torch.no_grad()
    def set_style(self, images: Sequence[torch.Tensor], blend: Sequence[float] | None = None) -> None:
        """Compute the style targets of one or more 0–1 images ``[1, 3, H, W]`` (sizes may differ),
        blended with `blend` (normalised to sum 1; equal by default)."""
        if not images:
            raise VisUsageError("at least one style image is needed")
        weights = [1.0] * len(images) if blend is None else [float(w) for w in blend]
        if len(weights) != len(images) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise VisUsageError(f"style blend {list(weights)} must have one weight ≥ 0 per style image "
                                f"({len(images)}) and not all 0")
        weights = [w / sum(weights) for w in weights]
        per_image = [self.features(img) for img in images]
        for name in self.layer_weights:
            target = self.statistic.blend([self.statistic.target(f[name]) for f in per_image], weights)
            self.style_targets[name] = target
            self.style_scales[name] = self.statistic.magnitude(target).clamp_min(1e-12)

    @torch.no_grad()
    def set_content(self, image: torch.Tensor) -> None:
        """Content target: features of the 0–1 content image(s) at the content layer."""
        if self.content_layer is None:
            raise ValueError("this StyleLoss has no content layer")
        target = self.features(image)[self.content_layer]
        self.content_target = target
        self.content_scale = target.pow(2).mean().clamp_min(1e-12)

    # ------------------------------------------------------------------ loss
    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its weighted terms (``content``, ``style:<layer>``, ``style``, ``tv``, ``total``)."""
        if not self.style_targets:
            raise ValueError("call set_style(...) before computing the loss")
        feats = self.features(image)
        terms: dict[str, torch.Tensor] = {}
        total = image.new_zeros(())
        if self.content_layer is not None and self.content_weight:
            if self.content_target is None:
                raise ValueError("call set_content(...) before computing the loss")
            c = (feats[self.content_layer] - self.content_target).pow(2).mean()
            if self.normalize:
                c = c / self.content_scale
            terms["content"] = self.content_weight * c
            total = total + terms["content"]
        style = image.new_zeros(())
        for name, w in self.layer_weights.items():
            s = self.statistic.loss(feats[name], self.style_targets[name])
            if self.normalize:
                s = s / self.style_scales[name]
            terms[f"style:{name}"] = self.style_weight * w * s
            style = style + terms[f"style:{name}"]
        terms["style"] = style
        total = total + style
        if self.tv_weight:
            terms["tv"] = self.tv_weight * total_variation(image)
            total = total + terms["tv"]
        terms["total"] = total
        return total, terms

    def describe(self) -> dict:
        """Settings for records."""
        return {"statistic": self.statistic.name, "style_layers": self.layer_weights,
                "content_layer": self.content_layer, "content_weight": self.content_weight,
                "style_weight": self.style_weight, "tv_weight": self.tv_weight, "pooling": self.pooling,
                "normalize": self.normalize, "channels_last": self.memory_format == torch.channels_last}

    def close(self) -> None:
        self.extractor.close()
