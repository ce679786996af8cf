"""Feed-forward universal style transfer: encoder → :func:`~.universal.wct_apply` /
:func:`~.universal.adain_apply` → a trained decoder (:mod:`.decoder`), for any style image.

* ``method="adain"``: one level at the decoder's (deepest) layer;
* ``method="wct"``: one level per decoder layer, deepest first (with relu5_1…relu1_1 in the file,
  the multi-level cascade of Li et al. 2017: each level re-encodes the previous level's image).

At each level the content features ``f`` become ``alpha · Σ_i b_i T(f; s_i) + (1 − alpha) · f`` with
``b`` the normalised `style_blend`; with a `mask` (two styles) ``m · T(f; c_1, s_1) + (1 − m) ·
T(f; c_2, s_2)``, ``m`` the mask resized to the feature map and ``c_k`` the content statistics of
the positions on each side (weighted by ``m`` and ``1 − m``). ``refine`` then runs that many Gatys
steps (:func:`~.transfer.transfer_style`) starting from the feed-forward image.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import VisUsageError
from ..images import fit_longest, resize_tensor
from ..limits import MAX_PIXELS, side, whole
from ..models import LoadedModel
from .color import luminance, match_color, match_luminance, recombine_luminance
from .decoder import DecoderSet, Encoder, check_encoder, load_decoder
from .optimize import check_size, settings_record
from .transfer import DEFAULT_MAX_SIDE, PRESERVE, ImageLike, StyleResult, _choice, as_image, check_numbers, \
    transfer_style
from .universal import FeatureStats, _check_alpha, adain_apply, feature_stats, wct_apply

__all__ = ["METHODS", "load_mask", "output_shape", "universal_transfer"]

METHODS = ("gatys", "wct", "adain")
#: a mask's aspect ratio may differ from the content's by this much (relative) before it is refused
MASK_ASPECT_TOLERANCE = 0.02


def output_shape(content_hw: tuple[int, int], size: int | Sequence[int] | None) -> tuple[int, int]:
    """(H, W): `size` as a longest side (aspect kept; default the content's, at most 512) or as (H, W)."""
    if size is None:
        return fit_longest(content_hw, min(DEFAULT_MAX_SIDE, max(content_hw)))
    if isinstance(size, (list, tuple)):
        if len(size) != 2:
            raise VisUsageError(f"`size` is a longest side or (height, width), got {list(size)}")
        return side(size[0], "size"), side(size[1], "size")
    return fit_longest(content_hw, side(size, "size"))


def load_mask(mask: str | Path | Image.Image | torch.Tensor, content_hw: tuple[int, int]) -> torch.Tensor:
    """A grey mask ``[1, 1, H, W]`` in 0–1 (white = style 1). Files and images must have one channel
    (or three equal ones) and the content's aspect ratio; anything else is a usage error."""
    name = str(mask) if isinstance(mask, (str, Path)) else "the mask"
    if isinstance(mask, (str, Path)):
        if not Path(mask).is_file():
            raise VisUsageError(f"mask {name!r} does not exist")
        try:
            with Image.open(mask) as img:
                img.load()
                mask = img.copy()
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
            raise VisUsageError(f"cannot read mask {name!r} as an image: {exc}") from None
    if isinstance(mask, Image.Image):
        grey = mask.mode in ("1", "L") or (mask.mode == "RGB" and len({b.tobytes() for b in mask.split()}) == 1)
        if not grey:
            raise VisUsageError(f"mask {name!r} has mode {mask.mode} ({len(mask.getbands())} channels); give a grey "
                                "8-bit image (one channel, or RGB with equal channels): white = style 1, black = "
                                "style 2")
        tensor = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)
        tensor = tensor[None, None]
    else:
        tensor = mask.detach().float().cpu()
        while tensor.dim() < 4:
            tensor = tensor.unsqueeze(0)
        if tensor.dim() != 4 or tensor.shape[:2] != (1, 1):
            raise VisUsageError(f"a mask tensor is [H, W] or [1, 1, H, W], got {list(mask.shape)}")
    h, w = tensor.shape[-2:]
    ch, cw = content_hw
    if abs((w / h) / (cw / ch) - 1) > MASK_ASPECT_TOLERANCE:
        raise VisUsageError(f"mask {name!r} is {w}x{h} pixels, the content {cw}x{ch}; give a mask of the "
                            "content's aspect ratio (it is resized to the feature map)")
    return tensor.clamp(0, 1)


def _decoders(decoder: DecoderSet | str | Path, model: LoadedModel, method: str) -> tuple[DecoderSet, list[str]]:
    decoders = decoder if isinstance(decoder, DecoderSet) else load_decoder(decoder, device=model.device)
    check_encoder(decoders, model)
    order = sorted(decoders.layers, key=lambda name: decoders.decoders[name].config.ups, reverse=True)
    return decoders, order if method == "wct" else order[:1]


def _transform(method: str, features: torch.Tensor, content: FeatureStats, style: FeatureStats) -> torch.Tensor:
    return (wct_apply if method == "wct" else adain_apply)(features, content, style)


def _level(method: str, features: torch.Tensor, styles: list[FeatureStats], blend: list[float],
           mask: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """One level's transformed features (see the module doc)."""
    if mask is not None:
        m = F.interpolate(mask.to(features), size=features.shape[-2:], mode="bilinear", align_corners=False)
        out = sum(weight * _transform(method, features, feature_stats(features, weight), stats)
                  for weight, stats in ((m, styles[0]), (1 - m, styles[1])))
    else:
        content = feature_stats(features)
        out = sum(b * _transform(method, features, content, stats) for b, stats in zip(blend, styles))
    return out if alpha == 1.0 else alpha * out + (1 - alpha) * features


def universal_transfer(model: LoadedModel, content: ImageLike, styles: Sequence[ImageLike] | ImageLike, *,
                       decoder: DecoderSet | str | Path, method: str = "wct", alpha: float = 1.0,
                       style_blend: Sequence[float] | None = None,
                       mask: str | Path | Image.Image | torch.Tensor | None = None, preserve_colors: str = "none",
                       size: int | Sequence[int] | None = None, refine: int = 0,
                       refine_options: dict[str, Any] | None = None, max_pixels: int = MAX_PIXELS,
                       progress: Any = None) -> StyleResult:
    """Paint `content` in the style of `styles` in one pass through `model` and a trained `decoder`.

    Args:
        decoder: a ``vis train-decoder`` file (or a loaded :class:`DecoderSet`) for this `model`.
        method: ``wct`` (every decoder layer, deepest first) or ``adain`` (the deepest layer).
        alpha: 0 = the decoder's reconstruction of the content … 1 = full style (module doc).
        style_blend: weights of several styles (normalised); mask: two styles, style 1 where white.
        preserve_colors: ``none`` | ``luminance`` | ``histogram`` (as :func:`~.transfer.transfer_style`).
        size: output longest side (aspect kept) or (height, width); default the content's, ≤ 512.
        refine, refine_options: Gatys steps from the feed-forward image, with these
            :func:`~.transfer.transfer_style` options.

    Returns:
        :class:`StyleResult` whose record has the method, the decoder's sha256 and layers, alpha and timings.
    """
    started = time.perf_counter()
    if method not in ("wct", "adain"):
        raise VisUsageError(f"unknown `method` {method!r} for universal transfer; valid: wct, adain "
                            "(gatys: vistoolbox.transfer_style)")
    _choice(preserve_colors, PRESERVE, "preserve_colors")
    alpha = _check_alpha(alpha)
    refine = whole(refine, "refine", 0)
    check_numbers(lr=None, style_scale=1.0, style_blend=style_blend, max_pixels=max_pixels, snapshot_every=0, seed=0)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise VisUsageError("at least one style image is needed")
    if style_blend is not None and len(style_blend) != len(style_list):
        raise VisUsageError(f"`style_blend` has {len(style_blend)} weights for {len(style_list)} style images")
    if mask is not None and (len(style_list) != 2 or style_blend is not None):
        raise VisUsageError(f"a mask takes exactly two styles (style 1 where white, style 2 where black) and no "
                            f"`style_blend`; got {len(style_list)} styles")
    if mask is not None and refine:
        raise VisUsageError("`refine` (Gatys steps) cannot follow a mask: Gatys' loss has no mask")
    decoders, levels = _decoders(decoder, model, method)
    content_t = as_image(content, max_pixels)
    shape = output_shape(tuple(content_t.shape[-2:]), size)
    check_size(shape, max_pixels, "the output")
    mask_t = load_mask(mask, tuple(content_t.shape[-2:])) if mask is not None else None
    style_ts = [resize_tensor(s, fit_longest(tuple(s.shape[-2:]), max(shape), shrink_only=True))
                for s in (as_image(s, max_pixels) for s in style_list)]
    x = resize_tensor(content_t, shape)
    full_content = x
    if preserve_colors == "histogram":
        style_ts = [match_color(s, x) for s in style_ts]
    elif preserve_colors == "luminance":
        x = luminance(x)
        style_ts = [match_luminance(luminance(s), x) for s in style_ts]
    weights = [1.0] * len(style_list) if style_blend is None else [float(b) for b in style_blend]
    blend = [b / sum(weights) for b in weights]
    timings: dict[str, float] = {"style_seconds": 0.0, "encode_seconds": 0.0, "transform_seconds": 0.0,
                                 "decode_seconds": 0.0}
    device = model.device
    with torch.no_grad():
        t0 = time.perf_counter()
        encoder = Encoder(model, levels)
        try:
            style_feats = [encoder(s) for s in style_ts]
        finally:
            encoder.close()
        style_stats = {layer: [feature_stats(f[layer]) for f in style_feats] for layer in levels}
        del style_feats
        timings["style_seconds"] = time.perf_counter() - t0
        for layer in levels:
            encoder = Encoder(model, [layer])
            try:
                t0 = time.perf_counter()
                features = encoder(x)[layer]
                t1 = time.perf_counter()
                features = _level(method, features, style_stats[layer], blend, mask_t, alpha)
                t2 = time.perf_counter()
                x = decoders.decoders[layer](features.to(device), shape).clamp(0, 1).float().cpu()
                t3 = time.perf_counter()
            finally:
                encoder.close()
            for key, seconds in (("encode_seconds", t1 - t0), ("transform_seconds", t2 - t1),
                                 ("decode_seconds", t3 - t2)):
                timings[key] += seconds
    if preserve_colors == "luminance":
        x = recombine_luminance(x, full_content).clamp(0, 1)
    feed_forward_s = time.perf_counter() - started
    record: dict[str, Any] = {
        "kind": "transfer", "method": method, "status": "complete",
        "settings": settings_record(content=content, styles=style_list, method=method, alpha=alpha,
                                    style_blend=style_blend, mask=mask, preserve_colors=preserve_colors,
                                    size=size, refine=refine, max_pixels=max_pixels),
        "decoder": {"sha256": decoders.sha256, "kind": decoders.kind, "layers": decoders.layers,
                    "levels": levels, "steps": decoders.steps, "path": str(decoder) if isinstance(decoder, (str, Path))
                    else None},
        "alpha": alpha, "model": model.describe(), "device": str(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "output_size": list(shape), "stages": [], "snapshots": [],
    }
    if refine:
        refined = transfer_style(model, full_content, style_ts, style_blend=style_blend,
                                 preserve_colors=preserve_colors, size=max(shape), steps=refine, start=x,
                                 max_pixels=max_pixels, progress=progress, **(refine_options or {}))
        x = refined.images
        record.update(status=refined.record["status"], stages=refined.record["stages"],
                      loss=refined.record["loss"], seed=refined.record["seed"])
        timings["refine_seconds"] = refined.record["timings"]["total_seconds"]
    record["timings"] = {**timings, "feed_forward_seconds": feed_forward_s,
                         "total_seconds": time.perf_counter() - started}
    return StyleResult(x, record)
