"""The optimisation loops: turn an objective and :class:`Settings` into images.

Two loops share one structure (image → transforms → normalise → truncated forward pass →
objective → step):

* :func:`run_lucid` — Fourier/decorrelated/sigmoid image, transformation robustness, Adam.
* :func:`run_pixel` — raw pixels, plain gradient ascent with Yosinski's regularizers (and
  DeepDream's normalised steps with random shifts).

The model is never hooked here: every forward pass goes through :class:`FeatureExtractor`, which
stops after the deepest layer the objective reads. Weights are frozen, so backward computes input
gradients only.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..features.extractor import FeatureExtractor
from ..models import LoadedModel
from .objectives import Objective
from .params import FourierImage, PixelImage
from .presets import Settings
from .regularizers import all_regularizers, progress_lr
from .transforms import robustness

__all__ = ["Progress", "progress_info", "Trace", "measure", "quantize", "run_lucid", "run_pixel", "unit_generator"]


def unit_generator(seed: int, unit: int) -> torch.Generator:
    """The generator for one unit's starting image: depends on (seed, unit) only, so a unit starts
    from the same image whatever batch it is rendered in."""
    return torch.Generator().manual_seed(seed * 1_000_003 + unit)


@dataclass
class Trace:
    """What a loop returns: final and starting 0–1 images ``[N, 3, H, W]`` (cpu) and the per-step
    activations of the primary objective (``history[step][i]``)."""

    images: torch.Tensor
    start: torch.Tensor
    history: list[list[float]] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C ended the loop early; ``images`` is the image at that step


def _bar(steps: int, quiet: bool, desc: str) -> tqdm:
    return tqdm(total=steps, disable=quiet, desc=desc, file=sys.stderr, unit="step", leave=False,
                dynamic_ncols=True)


class _Step:
    """One forward pass: image → model input → scores.

    While it is open the model's 4-D weights are in channels-last layout (faster convolutions on
    CPU and GPU); :meth:`close` puts them back, so the caller's model is left as it was.
    """

    def __init__(self, model: LoadedModel, objective: Objective, primary: Objective):
        layers = list(dict.fromkeys(objective.layers + primary.layers))
        self.module = model.module
        self.module.to(memory_format=torch.channels_last)
        self.fx = FeatureExtractor(model, layers)
        self.normalize = model.preprocessing.normalize
        self.objective = objective
        self.primary = primary

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        acts = self.fx(self.normalize(image).contiguous(memory_format=torch.channels_last))
        return self.objective(acts), self.primary(acts)

    def close(self) -> None:
        self.fx.close()
        self.module.to(memory_format=torch.contiguous_format)


Progress = Callable[[dict], None]


def _iterate(steps: int, quiet: bool, desc: str, one_step: Callable[[int], torch.Tensor],
             callback: Callable[[int, torch.Tensor], None] | None = None, progress: Progress | None = None,
             snapshot: Callable[[], torch.Tensor] | None = None,
             snapshot_every: int = 0) -> tuple[list[list[float]], bool]:
    """Run ``one_step(step)`` (it returns the units' activations) `steps` times under a progress
    bar, then ``callback(step, activations)`` and ``progress(info)`` (see :func:`progress_info`);
    Ctrl-C (also from either) stops early and keeps what was done. Returns (per-step history,
    interrupted)."""
    history: list[list[float]] = []
    try:
        with _bar(steps, quiet, desc) as bar:
            for step in range(steps):
                act = one_step(step)
                history.append(act.detach().tolist())
                if callback:
                    callback(step, act)
                if progress:
                    progress(progress_info(step, steps, history[-1], snapshot, snapshot_every))
                bar.update(1)
                if step % 8 == 0 or step == steps - 1:
                    bar.set_postfix(act=f"{sum(history[-1]) / len(history[-1]):.4g}", refresh=False)
    except KeyboardInterrupt:  # keep what was optimised so far
        return history, True
    return history, False


def progress_info(step: int, steps: int, activation: list[float], snapshot: Callable[[], torch.Tensor] | None,
                  snapshot_every: int) -> dict:
    """What a loop reports after step index `step`: ``step`` (1-based), ``steps_total``,
    ``activation`` (one value per unit, under this step's transforms) and, every `snapshot_every`
    steps and at the last one, ``images`` (the current 0–1 images ``[N, 3, H, W]``, cpu)."""
    info: dict = {"step": step + 1, "steps_total": steps, "activation": activation}
    if snapshot is not None and snapshot_every > 0 and ((step + 1) % snapshot_every == 0 or step + 1 == steps):
        with torch.no_grad():
            info["images"] = snapshot().detach().clamp(0, 1).cpu()
    return info


def run_lucid(model: LoadedModel, objective: Objective, primary: Objective, settings: Settings,
              seeds: list[torch.Generator], transform_seed: int, size: tuple[int, int],
              quiet: bool = True, desc: str = "maximize",
              callback: Callable[[int, torch.Tensor], None] | None = None,
              transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
              progress: Progress | None = None, snapshot_every: int = 0) -> Trace:
    """Adam on a decorrelated Fourier image under Lucid's random transforms.

    `callback(step, activations)` runs after every step, and `progress(info)` (see
    :func:`progress_info`); `transform` replaces the transforms the settings describe (the
    benchmark passes Lucent's own).
    """
    device = model.device
    image = FourierImage(seeds, size, sd=settings.sd, decay_power=settings.decay_power,
                         decorrelate=settings.decorrelate).to(device)
    if transform is None:
        transform = robustness(settings.pad, settings.jitter, settings.scales, settings.angles, settings.jitter2)
    tgen = torch.Generator().manual_seed(transform_seed)
    with torch.no_grad():
        start = image().detach().cpu()
    optimizer = torch.optim.Adam(image.parameters(), lr=settings.lr)
    step_fn = _Step(model, objective, primary)

    def one_step(step: int) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        score, act = step_fn(transform(image(), tgen))
        (-score.sum()).backward()
        optimizer.step()
        return act

    try:
        history, interrupted = _iterate(settings.steps, quiet, desc, one_step, callback, progress, image,
                                        snapshot_every)
        with torch.no_grad():
            final = image().detach().cpu()
    finally:
        step_fn.close()
    return Trace(final, start, history, interrupted)


def run_pixel(model: LoadedModel, objective: Objective, primary: Objective, settings: Settings,
              seeds: list[torch.Generator], transform_seed: int, size: tuple[int, int],
              init: torch.Tensor | None = None, quiet: bool = True, desc: str = "maximize",
              progress: Progress | None = None, snapshot_every: int = 0) -> Trace:
    """Gradient ascent on raw pixels with Yosinski et al.'s regularizers (0–255-minus-mean space).

    Each step: clip to the valid range, backprop the objective, ``x += lr·grad`` (``lr`` constant,
    Yosinski's "progress" policy, or DeepDream's ``lr / mean|grad|``), then decay, blur and the
    percentile clips. `progress(info)` runs after every step (see :func:`progress_info`).
    """
    device = model.device
    image = PixelImage(seeds, size, model.preprocessing, init_std=settings.init_std,
                       init=None if init is None else init).to(device)
    regs = all_regularizers(settings.decay, settings.blur_radius, settings.blur_every,
                            settings.norm_pct, settings.contrib_pct)
    rgen = torch.Generator().manual_seed(transform_seed)
    image.clamp_()
    with torch.no_grad():
        start = image().detach().cpu()
    step_fn = _Step(model, objective, primary)

    def one_step(step: int) -> torch.Tensor:
        image.clamp_()
        rgb = image()
        if settings.roll > 0:
            dy, dx = (int(v) for v in torch.randint(-settings.roll, settings.roll + 1, (2,), generator=rgen))
            rgb = torch.roll(rgb, shifts=(dy, dx), dims=(2, 3))
        score, act = step_fn(rgb)
        (grad,) = torch.autograd.grad(score.sum(), image.pixels)
        with torch.no_grad():
            if settings.lr_policy == "progress":
                lr = progress_lr(grad, settings.desired_progress, settings.max_lr)
            elif settings.lr_policy == "normalized":
                lr = settings.lr / grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            else:
                lr = settings.lr
            image.pixels.add_(lr * grad)
            for reg in regs:
                reg(image.pixels, grad, step)
        return act

    try:
        history, interrupted = _iterate(settings.steps, quiet, desc, one_step, None, progress, image, snapshot_every)
        image.clamp_()
        with torch.no_grad():
            final = image().detach().cpu()
    finally:
        step_fn.close()
    return Trace(final, start, history, interrupted)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """What a PNG stores: 0–1 rounded to 8 bits."""
    return images.clamp(0, 1).mul(255).round().div(255)


@torch.no_grad()
def measure(model: LoadedModel, objective: Objective, images: torch.Tensor) -> list[float]:
    """The objective's scores for 0–1 `images` ``[N, 3, H, W]`` as given (no transforms), through
    the shared extractor — the one function that judges every image (ours, Lucent's, noise)."""
    layers = list(objective.layers)
    with FeatureExtractor(model, layers) as fx:
        acts = fx(model.preprocessing.normalize(images.to(model.device)))
        return objective(acts).float().cpu().tolist()
