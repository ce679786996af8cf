"""Gatys texture synthesis and style transfer by image optimisation: the entry points and outputs.

``transfer_style(model, content, [style, ...])`` and ``synthesize_texture(model, style)`` both
return a :class:`StyleResult` (``images [1, 3, H, W]`` in 0–1 on the CPU and the ``record``) and
call ``progress(info)`` after every step with ``{"step", "steps_total", "stage", "stage_step",
"size", "losses"}`` plus ``"image"`` (the current result, 0–1, CPU) on snapshot steps. The loop
itself is :mod:`.optimize`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from PIL import Image

from ..errors import VisUsageError
from ..images import DEFAULT_MAX_PIXELS, open_image, save_png, to_tensor
from ..limits import MAX_PIXELS, learning_rate, number, weight, whole
from ..limits import steps as limit_steps
from ..models import LoadedModel
from ..result import ImageResult, png_path
from .losses import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, StyleLoss
from .optimize import OPTIMIZERS, Progress, run_stages, settings_record

__all__ = ["DEFAULT_CONTENT_WEIGHT", "DEFAULT_STYLE_WEIGHT", "DEFAULT_TV_WEIGHT", "MAX_PIXELS", "PRESERVE", "StyleResult",
           "check_output_path", "sidecar_path", "snapshot_path", "snapshot_writer", "synthesize_texture",
           "transfer_style"]

# MAX_PIXELS (2048², from vistoolbox.limits): the largest optimised image (and scaled style image),
# in pixels, unless ``max_pixels`` raises it.
#: Default output size: the content's own size, scaled down to this longest side.
DEFAULT_MAX_SIDE = 512
#: Style images at most this many times the output's size (larger is never useful).
MAX_STYLE_SCALE = 100.0
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 10.0
DEFAULT_TV_WEIGHT = 1.0
INITS = ("content", "noise", "style")
PRESERVE = ("none", "luminance", "histogram")

ImageLike = torch.Tensor | str | Path | Image.Image


@dataclass
class StyleResult(ImageResult):
    """The synthesised or stylised image ``images [1, 3, H, W]`` (0–1, CPU) and its ``record``:
    every setting, the seed, the device, per-stage loss curves for every term, timings and the
    status (``complete`` or ``interrupted``)."""

    def save(self, path: str | Path) -> list[Path]:
        """Write the PNG (``path`` must end in .png) and its JSON sidecar, the record plus ``output``."""
        check_output_path(path)
        return ImageResult(self.images, {**self.record, "output": str(path)}).save(path)


# --------------------------------------------------------------------------- inputs
def as_image(source: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """A path, PIL image or ``[1, 3, H, W]``/``[3, H, W]`` 0–1 tensor → float ``[1, 3, H, W]`` on the CPU."""
    if isinstance(source, (str, Path)):
        return to_tensor(open_image(source, max(max_pixels, DEFAULT_MAX_PIXELS)))
    if isinstance(source, Image.Image):
        return to_tensor(source)
    tensor = source.detach().float().cpu()
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tensor.shape[:2] != (1, 3):
        raise VisUsageError(f"expected an RGB image tensor [1, 3, H, W], got {list(tensor.shape)}")
    return tensor


def plan_stages(content_shape: tuple[int, int], sizes: Sequence[int] | None, steps: Sequence[int] | int | None,
                size: int | None) -> list[tuple[int, int]]:
    """``[(longest side, steps), ...]`` from the size options (see :func:`transfer_style`)."""
    if sizes and size is not None:
        raise VisUsageError("give either `size` or `sizes`, not both (the last of the sizes is the output's)")
    if not sizes:
        sizes = [min(DEFAULT_MAX_SIDE, max(content_shape)) if size is None else whole(size, "size")]
    sizes = [whole(s, "sizes") for s in sizes]
    if steps is None:
        steps = [300] + [100] * (len(sizes) - 1)
    elif not isinstance(steps, (list, tuple)):
        steps = [steps]
    steps = [limit_steps(s, "steps") for s in steps]
    if len(steps) != len(sizes):
        raise VisUsageError(f"`sizes` has {len(sizes)} entries ({', '.join(map(str, sizes))}) but `steps` has "
                            f"{len(steps)} ({', '.join(map(str, steps))}); give one step count per size")
    return list(zip(sizes, steps))


def check_numbers(*, lr: float | None, style_scale: float, style_blend: Sequence[float] | None, max_pixels: int,
                  snapshot_every: int, seed: int, **weights: float) -> None:
    """Refuse NaN, infinite, negative or zero values where they cannot work (`weights` ≥ 0)."""
    if lr is not None:
        learning_rate(lr, "lr")
    number(style_scale, "style_scale", maximum=MAX_STYLE_SCALE, positive=True)
    for value in style_blend or ():
        number(value, "style_blend", 0)
    if style_blend is not None and not sum(style_blend) > 0:
        raise VisUsageError(f"`style_blend` weights must not all be 0, got {list(style_blend)}")
    whole(max_pixels, "max_pixels")
    whole(snapshot_every, "snapshot_every", 0)
    whole(seed, "seed", 0)
    for name, value in weights.items():
        weight(value, name)


def _choice(value: str, valid: Sequence[str], what: str) -> str:
    if value not in valid:
        raise VisUsageError(f"unknown `{what}` {value!r}; valid: {', '.join(valid)}")
    return value


# --------------------------------------------------------------------------- public API
def transfer_style(model: LoadedModel, content: ImageLike, styles: Sequence[ImageLike] | ImageLike, *,
                   style_blend: Sequence[float] | None = None,
                   content_layer: str = DEFAULT_CONTENT_LAYER,
                   style_layers: Sequence[str] | Mapping[str, float] = DEFAULT_STYLE_LAYERS,
                   statistic: str = "gram", content_weight: float = DEFAULT_CONTENT_WEIGHT,
                   style_weight: float = DEFAULT_STYLE_WEIGHT, tv_weight: float = DEFAULT_TV_WEIGHT,
                   init: str = "content", optimizer: str = "lbfgs", lr: float | None = None,
                   pooling: str = "max", style_scale: float = 1.0, preserve_colors: str = "none",
                   sizes: Sequence[int] | None = None, steps: Sequence[int] | int | None = None,
                   size: int | None = None, max_pixels: int = MAX_PIXELS, seed: int = 0,
                   snapshot_every: int = 0, progress: Progress | None = None,
                   normalize: bool = True, start: ImageLike | None = None) -> StyleResult:
    """Gatys et al. style transfer: optimise an image to have `content`'s features and the styles' statistics.

    Args:
        model: e.g. ``load_model("vgg16", "hed")``.
        content, styles: paths, PIL images or 0–1 tensors; several styles are blended with `style_blend`.
        content_layer / style_layers: names or aliases; style layers may be ``{name: weight}``.
        statistic: ``gram`` (default), ``mean_std`` or ``histogram`` (see :mod:`vistoolbox.style.stats`).
        content_weight, style_weight, tv_weight: weights of the normalised terms (see
            :class:`~vistoolbox.style.losses.StyleLoss`); defaults 1, 10, 1.
        init: ``content`` | ``noise`` | ``style`` (first style image resized to the output).
        optimizer: ``lbfgs`` (lr 1; strong-Wolfe fallback, see :func:`optimize`) | ``adam`` (lr 0.02
            on 0–1 pixels, clamped).
        pooling: ``max`` | ``avg`` (average pooling on a copy of the model).
        style_scale: style images are resized to ``style_scale`` × the output's longest side.
        preserve_colors: ``none`` | ``luminance`` (transfer on YIQ luminance, keep the content's I/Q) |
            ``histogram`` (match the styles' colour mean/covariance to the content first).
        sizes, steps: coarse-to-fine stages (longest side, steps per stage). Default: one stage at
            `size`, or the content's size scaled down to 512 px; 300 steps (100 for later stages).
        max_pixels: refuse optimised or scaled style images above this many pixels (default 2048²).
        seed: noise initialisation; same seed and device ⇒ same result.
        snapshot_every: pass the current image to `progress` every N steps.
        progress: called after every step (see module doc).
        start: an image to start from instead of `init` (resized to the first stage), e.g. a
            feed-forward result to refine.

    Returns:
        :class:`StyleResult`: ``images [1, 3, H, W]`` 0–1 on the CPU and the record (every setting,
        the seed, the device, per-stage loss curves for every term, timings and the status).
    """
    _choice(init, INITS, "init")
    _choice(optimizer, OPTIMIZERS, "optimizer")
    _choice(preserve_colors, PRESERVE, "preserve_colors")
    check_numbers(lr=lr, style_scale=style_scale, style_blend=style_blend, max_pixels=max_pixels,
                  snapshot_every=snapshot_every, seed=seed, content_weight=content_weight, style_weight=style_weight,
                  tv_weight=tv_weight)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise VisUsageError("at least one style image is needed")
    if style_blend is not None and len(style_blend) != len(style_list):
        raise VisUsageError(f"`style_blend` has {len(style_blend)} weights for {len(style_list)} style images")
    settings = settings_record(
        content=content, styles=style_list, style_blend=style_blend, content_layer=content_layer,
        style_layers=style_layers, statistic=statistic, content_weight=content_weight,
        style_weight=style_weight, tv_weight=tv_weight, init=init, optimizer=optimizer, lr=lr,
        pooling=pooling, style_scale=style_scale, preserve_colors=preserve_colors, sizes=sizes,
        steps=steps, size=size, max_pixels=max_pixels, seed=seed, snapshot_every=snapshot_every,
        normalize=normalize, start=None if start is None else "<image>")
    content_t = as_image(content, max_pixels)
    style_ts = [as_image(s, max_pixels) for s in style_list]
    stages = plan_stages(tuple(content_t.shape[-2:]), sizes, steps, size)
    loss = StyleLoss(model, style_layers, content_layer, statistic, content_weight, style_weight, tv_weight,
                     pooling, normalize)
    try:
        return StyleResult(*run_stages(
            model, loss, kind="transfer", content=content_t, styles=style_ts, blend=style_blend, stages=stages,
            init=init, optimizer=optimizer, lr=lr, style_scale=style_scale, preserve_colors=preserve_colors,
            max_pixels=max_pixels, seed=seed, snapshot_every=snapshot_every, progress=progress, settings=settings,
            start=None if start is None else as_image(start, max_pixels)))
    finally:
        loss.close()


def synthesize_texture(model: LoadedModel, style: Sequence[ImageLike] | ImageLike, *, size: int = 256,
                       steps: int = 300, layers: Sequence[str] | Mapping[str, float] = DEFAULT_STYLE_LAYERS,
                       statistic: str = "gram", tv_weight: float = 0.0, optimizer: str = "lbfgs",
                       lr: float | None = None, pooling: str = "max", style_scale: float = 1.0,
                       style_blend: Sequence[float] | None = None, max_pixels: int = MAX_PIXELS,
                       seed: int = 0, snapshot_every: int = 0, progress: Progress | None = None,
                       normalize: bool = True) -> StyleResult:
    """Gatys et al. (2015) texture synthesis: a `size`×`size` image from noise matching the style statistics.

    The style image is resized so its longest side is ``style_scale × size``. Other arguments as
    in :func:`transfer_style`; returns a :class:`StyleResult` with ``images [1, 3, size, size]``.
    """
    _choice(optimizer, OPTIMIZERS, "optimizer")
    check_numbers(lr=lr, style_scale=style_scale, style_blend=style_blend, max_pixels=max_pixels,
                  snapshot_every=snapshot_every, seed=seed, tv_weight=tv_weight)
    size = whole(size, "size")
    style_list = list(style) if isinstance(style, (list, tuple)) else [style]
    settings = settings_record(styles=style_list, size=size, steps=steps, layers=layers, statistic=statistic,
                                tv_weight=tv_weight, optimizer=optimizer, lr=lr, pooling=pooling,
                                style_scale=style_scale, style_blend=style_blend, max_pixels=max_pixels,
                                seed=seed, snapshot_every=snapshot_every, normalize=normalize)
    style_ts = [as_image(s, max_pixels) for s in style_list]
    stages = plan_stages((size, size), None, steps, size)
    loss = StyleLoss(model, layers, None, statistic, 0.0, 1.0, tv_weight, pooling, normalize)
    try:
        return StyleResult(*run_stages(
            model, loss, kind="texture", content=None, styles=style_ts, blend=style_blend, stages=stages,
            init="noise", optimizer=optimizer, lr=lr, style_scale=style_scale, preserve_colors="none",
            max_pixels=max_pixels, seed=seed, snapshot_every=snapshot_every, progress=progress, settings=settings,
            square=True))
    finally:
        loss.close()


# --------------------------------------------------------------------------- outputs
def sidecar_path(out: str | Path) -> Path:
    """``result.png`` → ``result.json``."""
    return Path(out).with_suffix(".json")


def snapshot_path(out: str | Path, step: int) -> Path:
    """``result.png`` → ``result_snapshots/step_00010.png``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_snapshots") / f"step_{step:05d}.png"


def snapshot_writer(out: str | Path, record_into: list[str]) -> Progress:
    """A progress callback that writes each snapshot PNG and appends its path to `record_into`."""
    def write(info: dict) -> None:
        if "image" in info:
            path = snapshot_path(out, info["step"])
            save_png(info["image"], path)
            record_into.append(str(path))
    return write


def check_output_path(out: str | Path) -> None:
    """`out` must be a .png path whose folder can be created (checked before any work)."""
    png_path(out)   # a folder or device is refused there
    if Path(out).suffix.lower() != ".png":
        raise VisUsageError(f"`out` must end in .png, got {str(out)!r}")
