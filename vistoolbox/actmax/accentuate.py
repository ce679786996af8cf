"""Feature accentuation (Hamblin et al. 2024): start from a real image and push a unit up while
staying close to it — "what in this image drives the unit".

The seed image is written into the Fourier parameterization exactly (:meth:`.params.FourierImage.from_images`);
each step is an Adam step on the unit's score under Lucid's transforms, followed by the proximal
step of an L2 penalty towards the seed in the parameterization's space (the whitened Fourier
coefficients), ``p ← p_seed + (p − p_seed) / (1 + 2·lr·λ_i)``: decoupled from Adam's gradient
scaling the way AdamW decouples weight decay, so an infinite λ returns the seed exactly and
λ = 0 is plain activation maximization from the seed. λ is made relative to the seed,
``λ_i = seed_penalty / rms(p_seed,i)``, so one value means about the same for every image. Measured on
VGG16 ``conv4_3:12``'s top patches (128 steps, centre neuron): ``seed_penalty`` 0.03 / 0.1 / 0.3 / 1
change the image by 18 / 11.5 / 7 / 3 8-bit levels on average; the preset's 0.1 keeps the seed
recognisable while the unit's pattern shows.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image

from ..errors import VisUsageError
from ..images import open_image, to_tensor
from ..models import LoadedModel, as_model
from ..rundir import open_run, unit_stem
from .api import build_objectives, load_start, make_record, render, target_units, with_plausibility
from .params import FourierImage
from .presets import settings_for
from .quality import Judge
from .render import Progress
from .result import MaximizeResult

__all__ = ["accentuate", "seed_weights", "topk_seeds"]

SeedImages = str | Path | Image.Image | torch.Tensor


def topk_seeds(run: str | Path, layer: str, unit: int, ranks: Iterable[int] | None = None) -> tuple[torch.Tensor, list[str]]:
    """The unit's top-k patches from a mining run, ``[K, 3, h, w]`` 0–1, and their paths."""
    opened = open_run(run)
    canonical = opened.resolve(layer)
    units = opened.units(canonical)
    if not 0 <= unit < units:
        raise VisUsageError(f"unit {unit} is out of range for layer {layer!r} with {units} units; valid: 0-{units - 1}")
    k = int(opened.topk(canonical)["values"].shape[1])
    chosen = list(ranks) if ranks is not None else list(range(k))
    bad = [r for r in chosen if not 0 <= r < k]
    if bad:
        raise VisUsageError(f"`rank` {bad[0]} is out of range; the run keeps the top {k} (valid: 0-{k - 1})")
    paths = [opened.patch(canonical, unit, r) for r in chosen]
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise VisUsageError(f"run {str(run)!r} has no patch {missing[0].name} (mined with `patches` off?)")
    return torch.cat([to_tensor(open_image(opened.file(p))) for p in paths]), [str(p) for p in paths]


@torch.no_grad()
def seed_weights(seeds: torch.Tensor, penalty: float, decay_power: float = 1.0, decorrelate: bool = True) -> torch.Tensor:
    """``λ_i = penalty / rms(p_seed,i)`` (see the module doc), ``[N]``."""
    spectrum = FourierImage.from_images(seeds, decay_power=decay_power, decorrelate=decorrelate).spectrum.detach()
    return penalty / spectrum.pow(2).flatten(1).mean(1).sqrt().clamp_min(1e-12)


def accentuate(model: LoadedModel | str, target: str, seeds: SeedImages | Sequence[SeedImages],
               units: Iterable[int] | None = None, *, preset: str = "accentuate",
               neuron: bool | tuple[int, int] | None = None, negate: bool = False, seed: int = 0,
               quiet: bool = True, run: str | Path | None = None, judge: Judge | None = None,
               sources: Sequence[str] | None = None, progress: Progress | None = None, snapshot_every: int = 0,
               **overrides: Any) -> MaximizeResult:
    """Accentuate a unit in real images: one result image per seed image, in one batch.

    Args:
        model: a :class:`LoadedModel` or a model name.
        target: ``"layer:unit"`` (or ``"layer"`` with `units`: one unit for all seeds, or one per seed).
        seeds: a path, PIL image or 0–1 tensor ``[N, 3, H, W]`` (or a list of them, same size after
            loading). Paths and PIL images are scaled so the longest side is ``size`` (default: the
            model's input size); tensors are used as they are.
        preset: ``accentuate`` (Fourier, one stage, mild transforms) or any lucid-family preset with a
            one-stage schedule; ``seed_penalty=`` sets λ.
        neuron, negate: as for :func:`.api.maximize` (default: the channel mean).
        run: a mining run to judge plausibility against (the unit's top-k patches).
        sources: names of the seed images for the record and file names (e.g. the patch paths
            :func:`topk_seeds` returns; a top-k patch ``unit_0012_3.png`` saves as ``unit_0012_rank3``).
        progress, snapshot_every: as for :func:`.api.maximize` (step, activation, preview images).

    Returns:
        :class:`MaximizeResult`; the record's ``activation_initial`` is each seed's own activation.
    """
    model = as_model(model)
    layer, chosen = target_units(target, units)
    settings = settings_for(preset, **overrides)
    if settings.family != "lucid" or settings.param != "fourier":
        raise VisUsageError(f"accentuation needs a Fourier `preset` (accentuate, lucid, ...), not {preset!r}")
    images, loaded = _load_seeds(seeds, settings.size or model.input_size)
    sources = list(sources) if sources is not None else loaded
    if len(sources) != images.shape[0]:
        raise VisUsageError(f"{len(sources)} `sources` for {images.shape[0]} `seeds`")
    if len(chosen) == 1:
        chosen = chosen * images.shape[0]
    if len(chosen) != images.shape[0]:
        raise VisUsageError(f"{len(chosen)} `units` for {images.shape[0]} `seeds`; give one unit, or one per seed")
    size = (int(images.shape[-2]), int(images.shape[-1]))
    settings.check_batch(size, images.shape[0], "seeds")
    objective, primary, info = build_objectives(model, layer, chosen, size, neuron, negate)
    weights = seed_weights(images, settings.seed_penalty, settings.decay_power, settings.decorrelate)
    rendered = render(model, settings, objective, primary, chosen, seed, size, images.to(model.device), quiet,
                      f"accentuate {layer}", progress, snapshot_every, seed_weights=weights)
    details = {"kind": "accentuate", "layer": layer, "layer_canonical": model.resolve(layer), "units": chosen,
               "negate": negate, "size": list(size), "seeds": sources,
               "seed_penalty_per_image": [round(float(w), 6) for w in weights], **info}
    record = make_record(model, settings, preset, seed, objective, details, rendered)
    record = with_plausibility(record, model, run, layer, chosen, rendered.trace.images, judge)
    stems = [f"{unit_stem(u)}_{_stem(source, i)}" for i, (u, source) in enumerate(zip(chosen, sources))]
    return MaximizeResult(rendered.trace.images, record, units=chosen, transparency=rendered.transparency, stems=stems)


def _stem(source: str, index: int) -> str:
    """``rank3`` for a top-k patch file (``unit_0012_3.png``), else ``seed<index>``."""
    name = Path(source).stem
    tail = name.rpartition("_")[2]
    return f"rank{tail}" if name.startswith("unit_") and tail.isdigit() else f"seed{index}"


def _load_seeds(seeds: SeedImages | Sequence[SeedImages], size: int) -> tuple[torch.Tensor, list[str]]:
    """Seed images as one ``[N, 3, H, W]`` batch and their descriptions."""
    items = list(seeds) if isinstance(seeds, (list, tuple)) else [seeds]
    if not items:
        raise VisUsageError("no `seeds` image given")
    loaded = [load_start(item, size if isinstance(item, (str, Path, Image.Image)) else None) for item in items]  # tensors as given
    batch = [image for image, _ in loaded]
    shapes = {tuple(image.shape[-2:]) for image in batch}
    if len(shapes) > 1:
        raise VisUsageError(f"`seeds` images differ in size after loading ({sorted(shapes)}); give images of one size")
    return torch.cat(batch), [source for image, source in loaded for _ in range(image.shape[0])]
