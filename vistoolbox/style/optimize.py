"""The optimisation loop shared by texture synthesis and style transfer.

A *step* is one loss evaluation: one forward pass through the truncated network plus one
backward pass, so a run costs exactly ``steps`` passes whatever the optimiser does. L-BFGS takes
plain steps (one evaluation each); should the loss explode it restarts from the best image with a
strong-Wolfe line search, whose trials count as steps (see :func:`optimize`). Coarse-to-fine
(:func:`run_stages`) runs one stage per size, each starting from the bilinearly upsampled result of
the previous one; style targets are computed once per stage.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import VisUsageError
from ..images import fit_longest, resize_tensor
from ..models import LoadedModel
from .color import luminance, match_color, match_luminance, recombine_luminance
from .losses import StyleLoss

__all__ = ["DEFAULT_LR", "MIN_SIDE", "OPTIMIZERS", "check_size", "optimize", "run_stages", "settings_record"]

DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
OPTIMIZERS = ("lbfgs", "adam")
MIN_SIDE = 16

Progress = Callable[[dict], None]


class _Stop(Exception):
    """Ends an optimisation from inside the loss closure (step budget reached)."""


def check_size(size: tuple[int, int], max_pixels: int, what: str) -> None:
    """Refuse sizes above `max_pixels` or below :data:`MIN_SIDE`."""
    if size[0] * size[1] > max_pixels:
        raise VisUsageError(f"{what} would be {size[1]}x{size[0]} = {size[0] * size[1]:,} pixels, above the "
                            f"limit of {max_pixels:,}; raise it with `max_pixels` (or choose a smaller size)")
    if min(size) < MIN_SIDE:
        raise VisUsageError(f"{what} would be {size[1]}x{size[0]} pixels; the smallest side must be ≥ {MIN_SIDE}")


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


def settings_record(**settings: Any) -> dict:
    """The settings of a run as JSON-able values (images and tensors by type name only)."""
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


def run_stages(model: LoadedModel, loss: StyleLoss, *, kind: str, content: torch.Tensor | None,
                styles: list[torch.Tensor], blend: Sequence[float] | None, stages: list[tuple[int, int]],
                init: str, optimizer: str, lr: float | None, style_scale: float, preserve_colors: str,
                max_pixels: int, seed: int, snapshot_every: int, progress: Progress | None,
                settings: dict, square: bool = False, start: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The shared driver of texture synthesis and style transfer (see the module doc); `start` (0–1
    ``[1, 3, H, W]``) replaces `init` as the first stage's starting image."""
    started = time.perf_counter()
    device = loss.device
    generator = torch.Generator().manual_seed(seed)
    base_shape = tuple(content.shape[-2:]) if content is not None else tuple(styles[0].shape[-2:])
    if preserve_colors == "histogram" and content is not None:
        styles = [match_color(s, content) for s in styles]
    shapes = [(side, side) if square else fit_longest(base_shape, side) for side, _ in stages]
    style_shapes = [[fit_longest(tuple(s.shape[-2:]), max(1, round(max(shape) * style_scale))) for s in styles]
                    for shape in shapes]
    for shape, s_shapes in zip(shapes, style_shapes):
        check_size(shape, max_pixels, "the output")
        for s_shape in s_shapes:
            check_size(s_shape, max_pixels, "a style image (after `style_scale`)")
    total_steps = sum(n for _, n in stages)
    record_stages: list[dict] = []
    image: torch.Tensor | None = None if start is None else start.detach().float().cpu()
    done = 0
    interrupted = False
    for index, ((side, steps), shape, s_shapes) in enumerate(zip(stages, shapes, style_shapes)):
        t0 = time.perf_counter()
        stage_content = resize_tensor(content, shape) if content is not None else None
        stage_styles = [resize_tensor(s, ss) for s, ss in zip(styles, s_shapes)]
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
            start = resize_tensor(stage_styles[0], shape)
        else:
            start = torch.rand((1, 3, *shape), generator=generator)
        full_content = resize_tensor(content, shape) if content is not None else None

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


