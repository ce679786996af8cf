"""The optimisation loops: turn an objective and :class:`Settings` into images.

Two loops share one structure (image → transforms → normalise → truncated forward pass →
objective → step):

* :func:`run_lucid` — Fourier/decorrelated/sigmoid image, transformation robustness, Adam.
* :func:`run_pixel` — raw pixels, plain gradient ascent with Yosinski's regularizers (and
  DeepDream's normalised steps with random shifts).

The model is never hooked here: every forward pass goes through :class:`FeatureExtractor`, which
stops after the deepest layer the objective reads and hands the objectives every layer channels
first, whatever its layout (token grids without their class token). Weights are frozen, so backward
computes input gradients only. A model that takes one input size only (a torchvision ViT) gets
every transformed image resized to it (:func:`model_input`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import VisUsageError
from ..features.extractor import FeatureExtractor
from ..images import resize_tensor
from ..models import LoadedModel
from .objectives import Objective
from .fourier import tile
from .params import FourierImage, ImageParam, PhaseImage, PixelImage
from .presets import Settings, plan_stages
from .regularizers import all_regularizers, progress_lr
from .transforms import robustness

__all__ = ["Progress", "progress_info", "Trace", "first_image", "measure", "quantize", "run_lucid", "run_pixel",
           "unit_generator"]


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
    stages: list[list[int]] = field(default_factory=list)  # [height, width, steps] per stage
    transparency: torch.Tensor | None = None  # accumulated |d objective / d image| [N, 1, H, W]


def _bar(steps: int, quiet: bool, desc: str) -> tqdm:
    return tqdm(total=steps, disable=quiet, desc=desc, file=sys.stderr, unit="step", leave=False,
                dynamic_ncols=True)


def model_input(model: LoadedModel, images: torch.Tensor) -> torch.Tensor:
    """0–1 RGB `images` → the normalised model input, resized (bilinear) to the model's one input
    size if it has one."""
    size = model.fixed_size
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        images = resize_tensor(images, (size, size), mode="bilinear")
    return model.preprocessing.normalize(images)


class _Step:
    """One forward pass: image → model input → scores.

    While it is open the model's 4-D weights are in channels-last layout (faster convolutions on
    CPU and GPU); :meth:`close` puts them back, so the caller's model is left as it was.
    """

    def __init__(self, model: LoadedModel, objective: Objective, primary: Objective):
        layers = list(dict.fromkeys(objective.layers + primary.layers))
        self.module = model.module
        self.module.to(memory_format=torch.channels_last)
        self.fx = FeatureExtractor(model, layers, channels_first=True)
        self.model = model
        self.objective = objective
        self.primary = primary

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        acts = self.fx(model_input(self.model, image).contiguous(memory_format=torch.channels_last))
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


class _Stages:
    """Which stage a global step belongs to: ``starts[i]`` is the first step of stage ``i``."""

    def __init__(self, plan: list[tuple[tuple[int, int], int]]):
        self.plan = plan
        self.starts = [sum(steps for _, steps in plan[:i]) for i in range(len(plan))]

    def begins(self, step: int) -> int | None:
        """The stage index that starts at `step` (None inside a stage)."""
        return self.starts.index(step) if step in self.starts else None


def _shrink(stage: tuple[int, int], final: tuple[int, int]) -> float:
    """How much pixel sizes (pad, jitter, roll, blur) shrink at a stage: with the canvas. (For tiled
    stages too: on VGG16 conv4_3 a 112 px first stage with pad 6 / jitter 4 reached activation
    20.7 in 192 steps, with the full-size pad 12 / jitter 8 only 11.)"""
    return max(stage) / max(final)


def _stage_transform(settings: Settings, stage: tuple[int, int], final: tuple[int, int]) -> Callable:
    """Lucid's transforms with pad and jitters in final-size pixels, shrunk with the stage."""
    small = settings.shrunk(_shrink(stage, final))
    return robustness(small.pad, small.jitter, small.scales, small.angles, small.jitter2)


def _grow_density(acc: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Carry an accumulated |gradient| map to a larger canvas: a pixel's gradient scales with its
    area, so the upsampled map is divided by the area ratio."""
    ratio = (acc.shape[-2] * acc.shape[-1]) / (size[0] * size[1])
    return F.interpolate(acc, size=size, mode="bilinear", align_corners=False) * ratio


def first_image(settings: Settings, seeds: list[torch.Generator], size: tuple[int, int],
                spectra: Callable[[tuple[int, int]], torch.Tensor] | None = None,
                seed_images: torch.Tensor | None = None) -> ImageParam:
    """The parameterization a lucid-family run starts from, at `size` (the first stage)."""
    if seed_images is not None:
        if settings.param != "fourier":
            raise VisUsageError("accentuation starts from an image, which needs `param` fourier")
        return FourierImage.from_images(seed_images, decay_power=settings.decay_power, decorrelate=settings.decorrelate)
    if settings.param == "phase":
        if spectra is None:
            raise ValueError("the phase parameterization needs a magnitude spectrum")
        return PhaseImage(seeds, spectra(size), size)
    return FourierImage(seeds, size, sd=settings.sd, decay_power=settings.decay_power,
                        decorrelate=settings.decorrelate)


def run_lucid(model: LoadedModel, objective: Objective, primary: Objective, settings: Settings,
              seeds: list[torch.Generator], transform_seed: int, size: tuple[int, int],
              quiet: bool = True, desc: str = "maximize",
              callback: Callable[[int, torch.Tensor], None] | None = None,
              transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
              spectra: Callable[[tuple[int, int]], torch.Tensor] | None = None,
              seed_images: torch.Tensor | None = None, seed_weights: torch.Tensor | None = None,
              progress: Progress | None = None, snapshot_every: int = 0) -> Trace:
    """Adam on a Fourier (Lucid) or phase-only (MACO) image under Lucid's random transforms,
    coarse to fine along ``settings.schedule``.

    Each stage starts a fresh Adam on the grown parameterization (pad and jitter shrink with the
    stage). `callback(step, activations)` runs after every step, and `progress(info)` (see
    :func:`progress_info`; snapshots are of the current stage's canvas); `transform` replaces the
    transforms the settings describe (the benchmark passes Lucent's own). `spectra(size)` gives the magnitude spectrum for the phase parameterization.
    Feature accentuation: `seed_images` (0–1, at `size`) is the start, and after every Adam step
    each image's parameters are pulled back towards the seed's by the proximal step of the L2
    penalty ``seed_weights[i] · ‖p − p_seed‖²`` (decoupled from Adam, as AdamW decouples weight
    decay): ``p ← p_seed + (p − p_seed) / (1 + 2·lr·seed_weights[i])`` — an infinite weight keeps
    the seed exactly. One-stage schedules only.
    With ``settings.transparency`` the trace holds the accumulated ``|∂objective/∂image|``.
    """
    device = model.device
    plan = plan_stages(settings, size)
    if seed_images is not None and len(plan) > 1:
        raise VisUsageError("accentuation runs at one size; give a one-stage `schedule`")
    stages = _Stages(plan)
    tgen = torch.Generator().manual_seed(transform_seed)
    state: dict = {"image": first_image(settings, seeds, plan[0][0], spectra, seed_images).to(device)}
    anchor = state["image"].anchor() if seed_images is not None else None
    weights = seed_weights.to(device) if seed_weights is not None else None
    with torch.no_grad():
        start = state["image"]().detach().cpu()
    acc: list[torch.Tensor] = []
    step_fn = _Step(model, objective, primary)

    def enter(index: int) -> None:
        stage = plan[index][0]
        if index > 0:
            grown = (state["image"].grow(stage, settings.carry, spectra(stage)) if isinstance(state["image"], PhaseImage)
                     else state["image"].grow(stage, settings.carry))
            state["image"] = grown.to(device)
            if acc:
                acc[0] = tile(acc[0], stage) if settings.carry == "tile" else _grow_density(acc[0], stage)
        state["optimizer"] = torch.optim.Adam(state["image"].parameters(), lr=settings.lr)
        state["transform"] = transform or _stage_transform(settings, stage, size)

    def one_step(step: int) -> torch.Tensor:
        index = stages.begins(step)
        if index is not None:
            enter(index)
        image, optimizer = state["image"], state["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        rgb = image()
        if settings.transparency:
            rgb.retain_grad()
        score, act = step_fn(state["transform"](rgb, tgen))
        (-score.sum()).backward()
        if settings.transparency and rgb.grad is not None:
            grad = rgb.grad.detach().abs().mean(1, keepdim=True)
            acc[:] = [grad if not acc else acc[0] + grad]
        optimizer.step()
        if anchor is not None and weights is not None:
            image.pull_(anchor, 1.0 / (1.0 + 2.0 * settings.lr * weights))
        return act

    def current() -> torch.Tensor:
        with torch.no_grad():
            return state["image"]().detach().cpu()

    try:
        history, interrupted = _iterate(settings.steps, quiet, desc, one_step, callback, progress,
                                        lambda: state["image"](), snapshot_every)
        final = current()
    finally:
        step_fn.close()
    trace = Trace(final, start, history, interrupted, stages=[[*s, n] for s, n in plan])
    if acc:
        trace.transparency = acc[0].cpu()  # the last stage is at the final size
    return trace


def run_pixel(model: LoadedModel, objective: Objective, primary: Objective, settings: Settings,
              seeds: list[torch.Generator], transform_seed: int, size: tuple[int, int],
              init: torch.Tensor | None = None, quiet: bool = True, desc: str = "maximize",
              progress: Progress | None = None, snapshot_every: int = 0) -> Trace:
    """Gradient ascent on raw pixels with Yosinski et al.'s regularizers (0–255-minus-mean space),
    coarse to fine along ``settings.schedule`` (pixels upsampled bilinearly between stages; blur
    radius and roll shrink with the stage; an `init` image is downsampled to the first stage).

    Each step: clip to the valid range, backprop the objective, ``x += lr·grad`` (``lr`` constant,
    Yosinski's "progress" policy, or DeepDream's ``lr / mean|grad|``), then decay, blur and the
    percentile clips. `progress(info)` runs after every step (see :func:`progress_info`).
    """
    device = model.device
    plan = plan_stages(settings, size)
    stages = _Stages(plan)
    first = plan[0][0]
    if init is not None and tuple(init.shape[-2:]) != first:
        init = F.interpolate(init, size=first, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    state: dict = {"image": PixelImage(seeds, first, model.preprocessing, init_std=settings.init_std,
                                       init=init).to(device)}
    rgen = torch.Generator().manual_seed(transform_seed)
    state["image"].clamp_()
    with torch.no_grad():
        start = state["image"]().detach().cpu()
    step_fn = _Step(model, objective, primary)

    def enter(index: int) -> None:
        stage = plan[index][0]
        if index > 0:
            state["image"] = state["image"].grow(stage, settings.carry).to(device)
        small = settings.shrunk(_shrink(stage, size))
        state["regs"] = all_regularizers(small.decay, small.blur_radius, small.blur_every, small.norm_pct,
                                         small.contrib_pct)
        state["roll"] = small.roll

    def one_step(step: int) -> torch.Tensor:
        index = stages.begins(step)
        if index is not None:
            enter(index)
        image, roll = state["image"], state["roll"]
        image.clamp_()
        rgb = image()
        if roll > 0:
            dy, dx = (int(v) for v in torch.randint(-roll, roll + 1, (2,), generator=rgen))
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
            for reg in state["regs"]:
                reg(image.pixels, grad, step)
        return act

    try:
        history, interrupted = _iterate(settings.steps, quiet, desc, one_step, None, progress,
                                        lambda: state["image"](), snapshot_every)
        state["image"].clamp_()
        with torch.no_grad():
            final = state["image"]().detach().cpu()
    finally:
        step_fn.close()
    return Trace(final, start, history, interrupted, stages=[[*s, n] for s, n in plan])


def quantize(images: torch.Tensor) -> torch.Tensor:
    """What a PNG stores: 0–1 rounded to 8 bits."""
    return images.clamp(0, 1).mul(255).round().div(255)


@torch.no_grad()
def measure(model: LoadedModel, objective: Objective, images: torch.Tensor) -> list[float]:
    """The objective's scores for 0–1 `images` ``[N, 3, H, W]`` as given (no transforms), through
    the shared extractor — the one function that judges every image (ours, Lucent's, noise)."""
    layers = list(objective.layers)
    with FeatureExtractor(model, layers, channels_first=True) as fx:
        acts = fx(model_input(model, images.to(model.device)))
        return objective(acts).float().cpu().tolist()
