"""Gatys texture synthesis and style transfer by image optimisation.

``transfer_style(model, content, [style, ...])`` and ``synthesize_texture(model, style)`` both
return ``(image [1, 3, H, W] in 0–1 on the CPU, record dict)`` and call ``progress(info)`` after
every step with ``{"step", "steps_total", "stage", "stage_step", "size", "losses"}`` plus
``"image"`` (the current result, 0–1, CPU) on snapshot steps.

A *step* is one loss evaluation: one forward pass through the truncated network plus one
backward pass, so a run costs exactly ``steps`` passes whatever the optimiser does. L-BFGS takes
plain steps (one evaluation each); should the loss explode it restarts from the best image with a
strong-Wolfe line search, whose trials count as steps (see :func:`optimize`). Coarse-to-fine (``sizes``) runs one stage per size, each
starting from the bilinearly upsampled result of the previous one; style targets are computed
once per stage.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import VisUsageError
from ..files import write_json
from ..images import DEFAULT_MAX_PIXELS, open_image, save_png, to_tensor
from ..models import LoadedModel
from .color import luminance, match_color, match_luminance, recombine_luminance
from .losses import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, StyleLoss

#: Largest optimised image (and scaled style image), in pixels, unless ``max_pixels`` raises it.
MAX_PIXELS = 2048 * 2048
#: Default output size: the content's own size, scaled down to this longest side.
DEFAULT_MAX_SIDE = 512
MIN_SIDE = 16
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 10.0
DEFAULT_TV_WEIGHT = 1.0
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
INITS = ("content", "noise", "style")
OPTIMIZERS = ("lbfgs", "adam")
PRESERVE = ("none", "luminance", "histogram")

ImageLike = torch.Tensor | str | Path | Image.Image
Progress = Callable[[dict], None]


class _Stop(Exception):
    """Ends an optimisation from inside the loss closure (step budget reached)."""


# --------------------------------------------------------------------------- inputs
def as_image(source: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """A path, PIL image or ``[1, 3, H, W]``/``[3, H, W]`` 0–1 tensor → float ``[1, 3, H, W]`` on the CPU."""
    if isinstance(source, (str, Path)):
        return to_tensor(open_image(source, max(max_pixels, DEFAULT_MAX_PIXELS)))
    if isinstance(source, Image.Image):
        return to_tensor(source.convert("RGB"))
    tensor = source.detach().float().cpu()
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tensor.shape[:2] != (1, 3):
        raise VisUsageError(f"expected an RGB image tensor [1, 3, H, W], got {list(tensor.shape)}")
    return tensor


def fit_size(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """(H, W) scaled so the longest side is `longest`, aspect kept."""
    h, w = shape
    scale = longest / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of a 0–1 image (clamped)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def check_size(size: tuple[int, int], max_pixels: int, what: str) -> None:
    """Refuse sizes above `max_pixels` or below :data:`MIN_SIDE`."""
    if size[0] * size[1] > max_pixels:
        raise VisUsageError(f"{what} would be {size[1]}x{size[0]} = {size[0] * size[1]:,} pixels, above the "
                            f"limit of {max_pixels:,}; raise it with --max-pixels (or choose a smaller size)")
    if min(size) < MIN_SIDE:
        raise VisUsageError(f"{what} would be {size[1]}x{size[0]} pixels; the smallest side must be ≥ {MIN_SIDE}")


def plan_stages(content_shape: tuple[int, int], sizes: Sequence[int] | None, steps: Sequence[int] | int | None,
                size: int | None) -> list[tuple[int, int]]:
    """``[(longest side, steps), ...]`` from the size options (see :func:`transfer_style`)."""
    if sizes and size:
        raise VisUsageError("give either --size or --sizes, not both (the last of --sizes is the output size)")
    if not sizes:
        sizes = [size or min(DEFAULT_MAX_SIDE, max(content_shape))]
    sizes = [int(s) for s in sizes]
    if steps is None:
        steps = [300] + [100] * (len(sizes) - 1)
    elif isinstance(steps, int):
        steps = [steps]
    steps = [int(s) for s in steps]
    if len(steps) != len(sizes):
        raise VisUsageError(f"--sizes has {len(sizes)} entries ({', '.join(map(str, sizes))}) but --steps has "
                            f"{len(steps)} ({', '.join(map(str, steps))}); give one step count per size")
    if any(s <= 0 for s in sizes) or any(s < 0 for s in steps):
        raise VisUsageError(f"sizes must be > 0 and steps ≥ 0, got sizes {sizes} and steps {steps}")
    return list(zip(sizes, steps))


def _choice(value: str, valid: Sequence[str], what: str) -> str:
    if value not in valid:
        raise VisUsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


# --------------------------------------------------------------------------- optimisation
class _Diverged(Exception):
    """Plain L-BFGS produced a non-finite or exploding loss."""


def _lbfgs(x: torch.Tensor, lr: float, budget: int, line_search: bool) -> torch.optim.LBFGS:
    # Plain steps: `budget` evaluations and `budget` updates. torch stops once evaluations reach
    # max_eval, which would skip the last update; with max_eval = budget + 1 it stops on max_iter
    # instead, after applying the final (unevaluated) update, as pystiche's loop does.
    return torch.optim.LBFGS([x], lr=lr, max_iter=max(budget, 1), max_eval=max(budget, 1) + (not line_search),
                             tolerance_grad=0.0, tolerance_change=0.0, history_size=100,
                             line_search_fn="strong_wolfe" if line_search else None)


def optimize(loss: StyleLoss, init: torch.Tensor, steps: int, optimizer: str = "lbfgs", lr: float | None = None,
             on_step: Callable[[int, dict[str, float], torch.Tensor], None] | None = None
             ) -> tuple[torch.Tensor, dict[str, list[float]], dict[str, Any]]:
    """Minimise ``loss`` over the pixels of `init` for `steps` loss evaluations.

    L-BFGS takes plain steps of length `lr` (one evaluation per iteration, as pystiche and the
    Gatys notebook do); if the loss turns non-finite or exceeds 10× its first value, the best image
    so far is restored and the rest of the budget runs with a strong-Wolfe line search. Adam
    clamps the pixels to 0–1 after each step.

    Returns ``(image, curves {term: [value per step]}, info)``: the final iterate, or the best
    evaluated image when the run was interrupted (Ctrl-C), fell back to the line search or was cut
    inside a line search; ``info`` says which (``interrupted``, ``line_search_from_step``,
    ``returned``). ``on_step(step, losses, image)`` runs after every evaluation (1-based step).
    """
    x = init.detach().clone().contiguous().to(loss.device).requires_grad_(True)
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    opt: torch.optim.Optimizer = _lbfgs(x, lr, steps, False) if optimizer == "lbfgs" else torch.optim.Adam([x], lr=lr)
    curves: dict[str, list[float]] = {}
    best = {"loss": math.inf, "image": x.detach().clone()}
    count = [0]
    info: dict[str, Any] = {"interrupted": False, "line_search_from_step": None, "returned": "final"}

    def closure() -> torch.Tensor:
        if count[0] >= steps:
            raise _Stop
        opt.zero_grad(set_to_none=True)
        total, terms = loss(x)
        total.backward()
        count[0] += 1
        values = {k: float(v.detach()) for k, v in terms.items()}
        for key, value in values.items():
            curves.setdefault(key, []).append(value)
        if values["total"] < best["loss"]:
            best["loss"], best["image"] = values["total"], x.detach().clone()
        if on_step is not None:
            on_step(count[0], values, x.detach())
        plain = optimizer == "lbfgs" and info["line_search_from_step"] is None
        if plain and not (math.isfinite(values["total"]) and values["total"] <= 10 * curves["total"][0]):
            raise _Diverged
        return total

    try:
        while count[0] < steps:
            before = count[0]
            try:
                opt.step(closure)
            except _Diverged:
                with torch.no_grad():
                    x.copy_(best["image"])
                info["line_search_from_step"] = count[0] + 1
                opt = _lbfgs(x, lr, steps - count[0], True)
                continue
            if optimizer == "adam":
                with torch.no_grad():
                    x.clamp_(0, 1)
            elif count[0] == before:
                break
    except _Stop:
        info["returned"] = "best"
    except KeyboardInterrupt:
        info["interrupted"], info["returned"] = True, "best"
    if info["line_search_from_step"] is not None or steps == 0:
        info["returned"] = "best" if steps else "final"
    image = best["image"] if info["returned"] == "best" else x.detach().clone()
    return image, curves, info


def _settings_record(**settings: Any) -> dict:
    out = {}
    for key, value in settings.items():
        if isinstance(value, (torch.Tensor, Image.Image)):
            value = f"<{type(value).__name__}>"
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def _run_stages(model: LoadedModel, loss: StyleLoss, *, kind: str, content: torch.Tensor | None,
                styles: list[torch.Tensor], blend: Sequence[float] | None, stages: list[tuple[int, int]],
                init: str, optimizer: str, lr: float | None, style_scale: float, preserve_colors: str,
                max_pixels: int, seed: int, snapshot_every: int, progress: Progress | None,
                settings: dict, square: bool = False) -> tuple[torch.Tensor, dict]:
    """The shared driver of texture synthesis and style transfer (see the module doc)."""
    started = time.perf_counter()
    device = loss.device
    generator = torch.Generator().manual_seed(seed)
    base_shape = tuple(content.shape[-2:]) if content is not None else tuple(styles[0].shape[-2:])
    if preserve_colors == "histogram" and content is not None:
        styles = [match_color(s, content) for s in styles]
    shapes = [(side, side) if square else fit_size(base_shape, side) for side, _ in stages]
    style_shapes = [[fit_size(tuple(s.shape[-2:]), max(1, round(max(shape) * style_scale))) for s in styles]
                    for shape in shapes]
    for shape, s_shapes in zip(shapes, style_shapes):
        check_size(shape, max_pixels, "the output")
        for s_shape in s_shapes:
            check_size(s_shape, max_pixels, "a style image (after --style-scale)")
    total_steps = sum(n for _, n in stages)
    record_stages: list[dict] = []
    image: torch.Tensor | None = None
    done = 0
    interrupted = False
    for index, ((side, steps), shape, s_shapes) in enumerate(zip(stages, shapes, style_shapes)):
        t0 = time.perf_counter()
        stage_content = resize(content, shape) if content is not None else None
        stage_styles = [resize(s, ss) for s, ss in zip(styles, s_shapes)]
        if preserve_colors == "luminance":
            grey_content = luminance(stage_content) if stage_content is not None else None
            stage_styles = [luminance(s) if grey_content is None else match_luminance(luminance(s), grey_content)
                            for s in stage_styles]
            stage_content = grey_content
        loss.set_style([s.to(device) for s in stage_styles], blend)
        if stage_content is not None and loss.content_layer is not None:
            loss.set_content(stage_content.to(device))
        targets_s = time.perf_counter() - t0
        if image is not None:
            start = F.interpolate(image, size=shape, mode="bilinear", align_corners=False)
            if preserve_colors == "luminance":
                start = luminance(start)
        elif init == "content" and stage_content is not None:
            start = stage_content
        elif init == "style":
            start = resize(stage_styles[0], shape)
        else:
            start = torch.rand((1, 3, *shape), generator=generator)
        full_content = resize(content, shape) if content is not None else None

        def finish(x: torch.Tensor) -> torch.Tensor:
            x = x.detach().float().cpu()
            if preserve_colors == "luminance" and full_content is not None:
                x = recombine_luminance(x, full_content)
            return x.clamp(0, 1)

        def on_step(step: int, values: dict[str, float], x: torch.Tensor, _index=index, _done=done,
                    _steps=steps, _shape=shape, _finish=finish) -> None:
            if progress is None:
                return
            info: dict[str, Any] = {"step": _done + step, "steps_total": total_steps, "stage": _index,
                                    "stage_step": step, "stage_steps": _steps, "size": list(_shape),
                                    "losses": values}
            if snapshot_every and (_done + step) % snapshot_every == 0:
                info["image"] = _finish(x)
            progress(info)

        t1 = time.perf_counter()
        result, curves, opt_info = optimize(loss, start, steps, optimizer, lr, on_step)
        interrupted = opt_info["interrupted"]
        seconds = time.perf_counter() - t1
        evaluations = len(curves.get("total", []))
        image = result.detach().float().cpu()
        record_stages.append({
            "size": list(shape), "style_sizes": [list(s) for s in s_shapes], "steps": steps,
            "evaluations": evaluations, "seconds": seconds, "targets_seconds": targets_s,
            "s_per_step": seconds / evaluations if evaluations else None, "curves": curves,
            "final": {k: v[-1] for k, v in curves.items()},
            "best_total": min(curves["total"]) if curves.get("total") else None, "optimizer": opt_info})
        done += steps
        if interrupted:
            break
    assert image is not None
    output = finish(image)  # noqa: F821 - defined in the last stage
    record = {
        "kind": kind, "status": "interrupted" if interrupted else "complete", "settings": settings,
        "loss": {**loss.describe(),
                 "step": "one loss evaluation (forward + backward pass); L-BFGS takes plain steps and "
                         "switches to a strong-Wolfe line search (whose trials count) if the loss explodes",
                 "formulas": "content mean((F-P)^2); style sum_l w_l L_stat (w normalised to sum 1); "
                             "Gram F F^T/(H*W), L = mean((G-G_hat)^2); tv mean sq. neighbour diff of the 0-1 "
                             "image; normalize=True divides each content/style term by its target's mean square"},
        "model": model.describe(), "seed": seed, "device": str(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "output_size": list(output.shape[-2:]), "stages": record_stages,
        "timings": {"total_seconds": time.perf_counter() - started,
                    "optimize_seconds": sum(s["seconds"] for s in record_stages)},
        "snapshots": [],
    }
    return output, record


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
                   normalize: bool = True) -> tuple[torch.Tensor, dict]:
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

    Returns:
        ``(image [1, 3, H, W] 0–1 CPU, record)``; the record holds every setting, the seed, the
        device, per-stage loss curves for every term, timings and the status.
    """
    _choice(init, INITS, "init")
    _choice(optimizer, OPTIMIZERS, "optimizer")
    _choice(preserve_colors, PRESERVE, "preserve-colors")
    if style_scale <= 0:
        raise VisUsageError(f"--style-scale must be > 0, got {style_scale}")
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise VisUsageError("at least one style image is needed")
    if style_blend is not None and len(style_blend) != len(style_list):
        raise VisUsageError(f"--style-blend has {len(style_blend)} weights for {len(style_list)} style images")
    settings = _settings_record(
        content=content, styles=style_list, style_blend=style_blend, content_layer=content_layer,
        style_layers=style_layers, statistic=statistic, content_weight=content_weight,
        style_weight=style_weight, tv_weight=tv_weight, init=init, optimizer=optimizer, lr=lr,
        pooling=pooling, style_scale=style_scale, preserve_colors=preserve_colors, sizes=sizes,
        steps=steps, size=size, max_pixels=max_pixels, seed=seed, snapshot_every=snapshot_every,
        normalize=normalize)
    content_t = as_image(content, max_pixels)
    style_ts = [as_image(s, max_pixels) for s in style_list]
    stages = plan_stages(tuple(content_t.shape[-2:]), sizes, steps, size)
    loss = StyleLoss(model, style_layers, content_layer, statistic, content_weight, style_weight, tv_weight,
                     pooling, normalize)
    try:
        return _run_stages(model, loss, kind="transfer", content=content_t, styles=style_ts, blend=style_blend,
                           stages=stages, init=init, optimizer=optimizer, lr=lr, style_scale=style_scale,
                           preserve_colors=preserve_colors, max_pixels=max_pixels, seed=seed,
                           snapshot_every=snapshot_every, progress=progress, settings=settings)
    finally:
        loss.close()


def synthesize_texture(model: LoadedModel, style: Sequence[ImageLike] | ImageLike, *, size: int = 256,
                       steps: int = 300, layers: Sequence[str] | Mapping[str, float] = DEFAULT_STYLE_LAYERS,
                       statistic: str = "gram", tv_weight: float = 0.0, optimizer: str = "lbfgs",
                       lr: float | None = None, pooling: str = "max", style_scale: float = 1.0,
                       style_blend: Sequence[float] | None = None, max_pixels: int = MAX_PIXELS,
                       seed: int = 0, snapshot_every: int = 0, progress: Progress | None = None,
                       normalize: bool = True) -> tuple[torch.Tensor, dict]:
    """Gatys et al. (2015) texture synthesis: a `size`×`size` image from noise matching the style statistics.

    The style image is resized so its longest side is ``style_scale × size``. Other arguments as
    in :func:`transfer_style`; returns ``(image [1, 3, size, size] 0–1 CPU, record)``.
    """
    _choice(optimizer, OPTIMIZERS, "optimizer")
    if style_scale <= 0:
        raise VisUsageError(f"--style-scale must be > 0, got {style_scale}")
    style_list = list(style) if isinstance(style, (list, tuple)) else [style]
    settings = _settings_record(styles=style_list, size=size, steps=steps, layers=layers, statistic=statistic,
                                tv_weight=tv_weight, optimizer=optimizer, lr=lr, pooling=pooling,
                                style_scale=style_scale, style_blend=style_blend, max_pixels=max_pixels,
                                seed=seed, snapshot_every=snapshot_every, normalize=normalize)
    style_ts = [as_image(s, max_pixels) for s in style_list]
    stages = plan_stages((size, size), None, steps, size)
    loss = StyleLoss(model, layers, None, statistic, 0.0, 1.0, tv_weight, pooling, normalize)
    try:
        return _run_stages(model, loss, kind="texture", content=None, styles=style_ts, blend=style_blend,
                           stages=stages, init="noise", optimizer=optimizer, lr=lr, style_scale=style_scale,
                           preserve_colors="none", max_pixels=max_pixels, seed=seed,
                           snapshot_every=snapshot_every, progress=progress, settings=settings, square=True)
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


def save_result(image: torch.Tensor, record: dict, out: str | Path) -> tuple[Path, Path]:
    """Write the PNG and its JSON sidecar (atomically); returns both paths."""
    out = Path(out)
    check_output_path(out)
    png = save_png(image, out)
    record = {**record, "output": str(out)}
    return png, write_json(sidecar_path(out), record)


def check_output_path(out: str | Path) -> None:
    """``--out`` must be a .png path whose folder can be created (checked before any work)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise VisUsageError(f"--out must end in .png, got {str(out)!r}")
    if out.exists() and out.is_dir():
        raise VisUsageError(f"--out {str(out)!r} is a folder; give a .png file path")
