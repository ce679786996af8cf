"""Public entry points: :func:`maximize`, :func:`dream`, :func:`maximize_layer`.

They parse and check the request (one-line :class:`VisUsageError` for anything invalid), build the
objective, run the matching loop from :mod:`.render` and return a :class:`MaximizeResult`.
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import VisUsageError
from ..features.extractor import FeatureExtractor
from ..features.layers import layer_layout
from ..images import fit_longest, load_tensor, resize_tensor, to_tensor
from ..limits import weight, whole
from ..models import LoadedModel, as_model
from ..rundir import check_network, maximize_path, open_run
from .backends import executor
from .objectives import Channel, DeepDream, Diversity, Neuron, Objective
from .presets import DEFAULT_PRESET, Settings, plan_stages, settings_for, sized
from .quality import Judge, default_judge, unit_plausibility
from .render import Progress, Trace, measure, model_input, quantize, run_lucid, run_pixel, unit_generator
from .result import MaximizeResult
from .spectrum import natural_spectrum, sample_folder

__all__ = ["Rendered", "build_objectives", "default_out", "dream", "layer_shape", "load_start", "make_record", "maximize",
           "maximize_layer", "parse_neuron", "parse_target", "parse_units", "render", "target_units", "transparency_map",
           "with_plausibility"]


def parse_units(text: str, name: str = "units") -> list[int]:
    """``"12"`` → [12]; ``"0-3"`` → [0, 1, 2, 3]; ``"1,5,7-8"`` → [1, 5, 7, 8]; errors name `name`."""
    units: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                if int(hi) < int(lo):
                    raise ValueError
                units.extend(range(int(lo), int(hi) + 1))
            else:
                units.append(int(part))
    except ValueError:
        raise VisUsageError(f"cannot read `{name}` {text!r}; use a number (12), a range (0-63) or a list (1,5,7-9)") from None
    return units


def parse_neuron(text: str | None) -> bool | tuple[int, int] | None:
    """A `neuron` given as text: None → channel objective; ``"centre"`` → True; ``"Y,X"`` → (y, x)."""
    if text is None:
        return None
    if text in ("centre", "center"):
        return True
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise VisUsageError(f"cannot read `neuron` {text!r}; use Y,X (e.g. 6,6), or centre") from None
    return (y, x)


def default_out(kind: str, layer: str, units: Sequence[int] | None, preset: str) -> Path:
    """``vis-out/maximize_conv4_12_lucid.png`` and the like."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in layer)
    if units:
        text = str(units[0]) if len(units) == 1 else (
            f"{units[0]}-{units[-1]}" if units == list(range(units[0], units[-1] + 1)) else f"{units[0]}-etc{len(units)}")
        safe += f"_{text}"
    return Path("vis-out") / f"{kind}_{safe}_{preset}.png"


def parse_target(target: str) -> tuple[str, list[int] | None]:
    """``"conv4:12"`` → ("conv4", [12]); ``"conv4"`` → ("conv4", None)."""
    layer, sep, units = target.rpartition(":")
    if not sep:
        return target, None
    return layer, parse_units(units)


def layer_shape(model: LoadedModel, layer: str, size: tuple[int, int]) -> tuple[int, ...]:
    """Output shape (without batch) of `layer` for a `size` input, channels first whatever the
    layer's layout: ``(C, H, W)`` (a token grid without its class token) or ``(C,)``; too-small
    sizes raise a usage error."""
    model.resolve(layer)
    x = torch.zeros(1, 3, *size, device=model.device)
    try:
        with torch.no_grad(), FeatureExtractor(model, [layer], channels_first=True) as fx:
            out = fx(model_input(model, x))[layer]
    except RuntimeError as exc:
        raise VisUsageError(f"image size {size[0]}x{size[1]} is too small for layer {layer!r} "
                            f"({str(exc).splitlines()[0][:120]}); use a larger `size`, e.g. "
                            f"{model.input_size}") from None
    if out.dim() > 2 and min(out.shape[2:]) < 1:
        raise VisUsageError(f"image size {size[0]}x{size[1]} is too small for layer {layer!r} (empty output); "
                            f"use a larger `size`, e.g. {model.input_size}")
    return tuple(out.shape[1:])


def _sized(settings: Settings, model: LoadedModel) -> tuple[Settings, tuple[int, int]]:
    """:func:`~vistoolbox.actmax.presets.sized` for `model`."""
    return sized(settings, model.input_size, fixed=model.fixed_size is not None)


def build_objectives(model: LoadedModel, layer: str, units: Sequence[int], size: tuple[int, int],
                     neuron: bool | tuple[int, int] | None = None, negate: bool = False,
                     diversity: float = 0.0) -> tuple[Objective, Objective, dict[str, Any]]:
    """Check the request against the layer's shape and return (objective to maximise, primary
    activation to report, description). `neuron` True means the spatial centre."""
    weight(diversity, "diversity")
    shape = layer_shape(model, layer, size)
    check_units(units, shape[0], layer)
    info: dict[str, Any] = {"layer_shape": list(shape), "layout": str(layer_layout(model, layer))}
    if neuron:
        if len(shape) < 3:
            raise VisUsageError(f"`neuron` needs a layer with spatial dimensions; {layer!r} has output "
                                f"shape {list(shape)} (use a channel objective: drop `neuron`)")
        h, w = shape[1], shape[2]
        y, x = (None, None) if neuron is True else neuron
        if y is not None and not (0 <= y < h and 0 <= x < w):  # type: ignore[operator]
            raise VisUsageError(f"`neuron` {y},{x} is outside layer {layer!r}'s {h}x{w} map; "
                                f"valid: 0-{h - 1},0-{w - 1}")
        primary: Objective = Neuron(layer, tuple(units), y, x)
        info["neuron"] = list(primary.position(h, w))  # type: ignore[attr-defined]
    else:
        primary = Channel(layer, tuple(units))
        info["neuron"] = None
    objective = -primary if negate else primary
    if diversity > 0 and len(units) > 1:
        objective = objective + diversity * Diversity(layer)
    return objective, primary, info


def target_units(target: str, units: Iterable[int] | None) -> tuple[str, list[int]]:
    """(layer, units) of a ``"layer:unit"`` `target` or of ``"layer"`` with `units` (which win)."""
    layer, from_target = parse_target(target)
    chosen = list(units) if units is not None else from_target
    if not chosen:
        raise VisUsageError(f"no unit given for layer {layer!r}; use 'layer:12' or `units`")
    return layer, chosen


def check_units(units: Sequence[int], channels: int, layer: str) -> None:
    """Every unit must be a channel of the layer (a usage error names the first that is not)."""
    bad = [u for u in units if not 0 <= u < channels]
    if bad:
        raise VisUsageError(f"unit {bad[0]} is out of range for layer {layer!r} with {channels} units; "
                            f"valid: 0-{channels - 1}")


def make_record(model: LoadedModel, settings: Settings, preset: str, seed: int, objective: Objective,
            details: dict[str, Any], run: "Rendered") -> dict[str, Any]:
    trace = run.trace
    return {
        "tool": "vistoolbox", "version": __version__, **model.describe(), **details,
        "objective": objective.describe(), "preset": preset, "settings": settings.to_dict(),
        "stages": trace.stages, **run.extra,
        "seed": seed, "device": str(model.device), "torch_version": torch.__version__,
        "python_version": platform.python_version(), "threads": torch.get_num_threads(),
        "seconds": round(run.seconds, 3), "steps_per_second": round(settings.steps / max(run.seconds, 1e-9), 4),
        "steps_done": len(trace.history), "interrupted": trace.interrupted,
        "activation_initial": run.initial, "activation_final": run.final, "history": trace.history,
    }


@dataclass
class Rendered:
    """A finished loop: its trace (8-bit images), activations on the start and final images,
    seconds, extra record fields (spectrum, transparency) and the 0–1 transparency maps."""

    trace: Trace
    initial: list[float]
    final: list[float]
    seconds: float
    extra: dict[str, Any]
    transparency: torch.Tensor | None = None


#: MACO's display rule for the transparency map (Horama's plot_maco): clip at this percentile, divide by it.
TRANSPARENCY_PERCENTILE = 80.0


def transparency_map(accumulated: torch.Tensor) -> torch.Tensor:
    """Accumulated ``|∂objective/∂image|`` ``[N, 1, H, W]`` → 0–1 alpha (8-bit): each map divided by
    its 80th percentile and clipped at 1, so the top fifth of the pixels is opaque."""
    flat = accumulated.flatten(1)
    level = torch.quantile(flat, TRANSPARENCY_PERCENTILE / 100, dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
    return quantize((accumulated / level).clamp(0, 1))


def _spectra(settings: Settings) -> tuple[Callable[[tuple[int, int]], torch.Tensor] | None, dict[str, Any]]:
    """For the phase parameterization: the magnitude per stage size and the record of the final one."""
    if settings.param != "phase":
        return None, {}
    folder = settings.spectrum or sample_folder()
    described: dict[str, Any] = {}

    def magnitude(size: tuple[int, int]) -> torch.Tensor:
        spectrum = natural_spectrum(folder, size)
        described.update(spectrum.describe())  # the last call is the final size
        return spectrum.magnitude

    return magnitude, described


def render(model: LoadedModel, settings: Settings, objective: Objective, primary: Objective,
         units: Sequence[int], seed: int, size: tuple[int, int], init: torch.Tensor | None,
         quiet: bool, desc: str, progress: Progress | None = None, snapshot_every: int = 0,
         seed_weights: torch.Tensor | None = None) -> Rendered:
    """Run the loop of the settings' family; `init` is DeepDream's start (pixel family) or the
    seed images of accentuation (lucid family, with `seed_weights`); `progress` as in :func:`maximize`."""
    for stage, _ in plan_stages(settings, size):
        if stage != size:
            layer_shape(model, objective.layers[0], stage)  # a too-small first stage is a usage error
    seeds = [unit_generator(seed, u) for u in units]
    spectra, spectrum_record = _spectra(settings)
    start = time.perf_counter()
    watch = dict(progress=progress, snapshot_every=snapshot_every)
    if settings.family == "lucid":
        trace = run_lucid(model, objective, primary, settings, seeds, seed, size, quiet=quiet, desc=desc,
                          spectra=spectra, seed_images=init, seed_weights=seed_weights, **watch)
    else:
        trace = run_pixel(model, objective, primary, settings, seeds, seed, size, init=init, quiet=quiet, desc=desc,
                          **watch)
    seconds = time.perf_counter() - start
    trace.images = quantize(trace.images)
    extra: dict[str, Any] = {"spectrum": spectrum_record} if spectrum_record else {}
    alpha = None
    if trace.transparency is not None:
        alpha = transparency_map(trace.transparency)
        extra["transparency"] = {"file": "<image stem>_transparency.png", "map": "accumulated |d objective / d image|, "
                                 f"mean over colour, divided by its {TRANSPARENCY_PERCENTILE:g}th percentile, clipped at 1"}
    return Rendered(trace, measure(model, primary, quantize(trace.start)), measure(model, primary, trace.images),
                    seconds, extra, alpha)


def with_plausibility(record: dict[str, Any], model: LoadedModel, run: str | Path | None, layer: str, units: Sequence[int],
            images: torch.Tensor, judge: Judge | None) -> dict[str, Any]:
    """The record with the plausibility of `images` against `run`'s top-k patches (or a note why not)."""
    if run is None:
        record["plausibility"] = None
        record["plausibility_note"] = "needs a mining run with the unit's top-k patches (`run`)"
        return record
    check_network(open_run(run), model.describe(), model.seed, "judge this model's images against its patches")
    record.update(unit_plausibility(run, layer, units, images, judge or default_judge(model)))
    return record


def maximize(model: LoadedModel | str, target: str, units: Iterable[int] | None = None, *,
             preset: str = DEFAULT_PRESET, neuron: bool | tuple[int, int] | None = None, negate: bool = False,
             diversity: float = 0.0, extra: Objective | None = None, seed: int = 0, quiet: bool = True,
             progress: Progress | None = None, snapshot_every: int = 0, run: str | Path | None = None,
             judge: Judge | None = None, **overrides: Any) -> MaximizeResult:
    """Optimise an image (one per unit, in one batch) that maximises units of a layer.

    Args:
        model: a :class:`LoadedModel` or a model name (loaded with its default weights).
        target: ``"layer:unit"``, ``"layer:0-7"`` or ``"layer"`` together with `units`.
        units: unit indices (channels of a conv layer, outputs of an fc layer).
        preset: ``quick`` (the default, :data:`DEFAULT_PRESET`), ``lucid``, ``distill``, ``maco``,
            ``accentuate``, ``yosinski1..4``, ``dream`` (see :data:`PRESETS`).
        neuron: ``True`` for the spatially central unit, ``(y, x)`` for a position, else the
            channel mean.
        negate: minimise instead. diversity: weight of the Gram-cosine diversity term.
        extra: any further objective added to the unit's, e.g. ``0.1 * DeepDream("conv3")``
            (the reported activations stay the unit's own).
        seed: fixes the start images and the random transforms (same seed ⇒ same bytes).
        quiet: hide the progress bar.
        progress: called after every step with ``{"step", "steps_total", "activation"}`` (one
            value per unit) plus, every `snapshot_every` steps and at the last, ``"images"``
            (the current 0–1 images ``[N, 3, H, W]``).
        **overrides: any :class:`Settings` field (``steps=64``, ``lr=0.1``, ``size=128``, …).

    Returns:
        :class:`MaximizeResult` with ``images`` ``[N, 3, H, W]`` and the ``record``.

    Example:
        >>> res = maximize(load_model("alexnet", "random"), "conv4:12", steps=32)
        >>> res.image.save("unit12.png"); res.record["activation_final"]
    """
    model = as_model(model)
    layer, chosen = target_units(target, units)
    settings, size = _sized(settings_for(preset, **overrides), model)
    settings.check_batch(size, len(chosen), "units")
    objective, primary, info = build_objectives(model, layer, chosen, size, neuron, negate, diversity)
    if extra is not None:
        for name in extra.layers:
            model.resolve(name)
        objective = objective + extra
    rendered = render(model, settings, objective, primary, chosen, seed, size, None, quiet, f"maximize {layer}",
                      progress, snapshot_every)
    details = {"kind": "maximize", "layer": layer, "layer_canonical": model.resolve(layer), "units": chosen,
             "negate": negate, "diversity": diversity, "size": list(size), **info}
    record = make_record(model, settings, preset, seed, objective, details, rendered)
    record = with_plausibility(record, model, run, layer, chosen, rendered.trace.images, judge)
    return MaximizeResult(rendered.trace.images, record, units=chosen, transparency=rendered.transparency)


def load_start(image: str | Path | Image.Image | torch.Tensor, longest: int | None) -> tuple[torch.Tensor, str]:
    """A start image as ``[N, 3, H, W]`` 0–1 and its description (the path, or "tensor"):
    a path or PIL image is scaled so its longest side is `longest`; a tensor too unless `longest`
    is None."""
    if isinstance(image, (str, Path)):
        return load_tensor(image, size=longest), str(image)
    tensor = to_tensor(image) if isinstance(image, Image.Image) else image.detach().float()
    start = tensor if tensor.dim() == 4 else tensor.unsqueeze(0)
    if longest:
        start = resize_tensor(start, fit_longest(tuple(start.shape[-2:]), longest), mode="bilinear")
    return start, "tensor"


def dream(model: LoadedModel | str, image: str | Path | Image.Image | torch.Tensor, layer: str, *,
          preset: str = "dream", seed: int = 0, quiet: bool = True, **overrides: Any) -> MaximizeResult:
    """DeepDream: amplify everything `layer` sees in `image` (mean squared activation), by gradient
    ascent on the image's pixels with normalised steps and random shifts.

    `image` is a path, PIL image or 0–1 tensor; it is scaled so its longest side is ``size``
    (default: the model's input size).
    """
    model = as_model(model)
    settings = settings_for(preset, **overrides)
    if settings.family != "pixel":
        raise VisUsageError(f"dream needs a pixel-space `preset` (dream, yosinski1..4), not {preset!r}")
    start, source = load_start(image, settings.size or model.input_size)
    size = (int(start.shape[-2]), int(start.shape[-1]))
    settings.check_batch(size, 1, "size")
    layer_shape(model, layer, size)
    objective = DeepDream(layer)
    rendered = render(model, settings, objective, objective, [0], seed, size, start.to(model.device), quiet,
                    f"dream {layer}")
    details = {"kind": "dream", "layer": layer, "layer_canonical": model.resolve(layer), "units": [0],
             "image": source, "size": list(size)}
    record = make_record(model, settings, preset, seed, objective, details, rendered)
    return MaximizeResult(rendered.trace.images, record, units=[0])


#: `maximize` keywords that are not settings.
MAXIMIZE_ONLY = ("neuron", "negate", "diversity", "extra", "judge")


def _has_patches(run: str | Path, layer: str) -> bool:
    """Whether `run` is a mining run with top-k patches of `layer` (else plausibility is skipped)."""
    try:
        opened = open_run(run)
        return opened.patch(layer, 0, 0).exists()
    except VisUsageError:
        return False


def maximize_layer(model: LoadedModel | str, layer: str, run: str | Path, units: Iterable[int] | None = None,
                   *, batch: int = 16, preset: str = DEFAULT_PRESET, seed: int = 0, quiet: bool = True,
                   backend: str = "local", overwrite: bool = False, progress: Progress | None = None,
                   snapshot_every: int = 0, plausibility: bool = True, **options: Any) -> list[Path]:
    """Render every unit of `layer` (or `units`) into ``RUN/layers/<name>/maximize/unit_0012.png``
    (+ ``.json``), `batch` units per pass. Units whose PNG already exists are skipped (unless
    `overwrite`), so an interrupted run resumes where it stopped. `backend` ``"ray"`` spreads the
    batches over a Ray cluster (``RAY_ADDRESS``, else a local one). `progress(info)` gets what
    :func:`maximize` reports plus ``units`` (the batch) and ``units_done`` / ``units_total``
    (local backend only). One progress bar: units, with the batch's step and activation. With
    `plausibility` each record also holds the image's plausibility against the unit's top-k
    patches in `run` (when `run` is a mining run with that layer's patches). Returns the PNGs
    written now."""
    model = as_model(model)
    check_network(open_run(run), model.describe(), model.seed, "write this model's optimised images into it")
    batch = whole(batch, "batch")
    run_batches = executor(backend)
    settings, size = _sized(settings_for(preset, **{k: v for k, v in options.items() if k not in MAXIMIZE_ONLY}),
                            model)
    settings.check_batch(size, batch, "batch")
    channels = layer_shape(model, layer, size)[0]
    wanted = list(units) if units is not None else list(range(channels))
    check_units(wanted, channels, layer)
    canonical = model.resolve(layer)
    todo = [u for u in wanted if overwrite or not maximize_path(run, canonical, u).exists()]
    chunks = [todo[i:i + batch] for i in range(0, len(todo), batch)]
    judged = plausibility and _has_patches(run, canonical)
    written: list[Path] = []
    with tqdm(total=len(wanted), initial=len(wanted) - len(todo), disable=quiet, desc=f"optimise {layer}",
              unit="unit", file=sys.stderr, dynamic_ncols=True) as bar:
        finished = [0]  # batches written: run_local renders batch i only after batch i-1 was written

        def report(info: dict) -> None:
            chunk = chunks[finished[0]]
            if info["step"] % 8 == 0 or info["step"] == info["steps_total"]:
                mean = sum(info["activation"]) / len(info["activation"])
                bar.set_postfix_str(f"step {info['step']}/{info['steps_total']}, act {mean:.4g}")
            if progress:
                progress({**info, "units": chunk, "units_done": len(written), "units_total": len(todo)})

        local = backend == "local"
        kwargs = dict(preset=preset, seed=seed, quiet=True, progress=report if local else None,
                      snapshot_every=snapshot_every if local and progress else 0, run=run if judged else None,
                      **options)
        for chunk, result in run_batches(maximize, model, layer, chunks, kwargs):
            if result.record["interrupted"]:  # a half-optimised unit must not count as finished
                raise KeyboardInterrupt
            for j, unit in enumerate(chunk):
                written.append(result.save_unit(j, maximize_path(run, canonical, unit)))
            finished[0] += 1
            bar.update(len(chunk))
    return written
