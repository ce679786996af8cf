"""A trained feed-forward stylizer: its self-describing file, loading, and applying it.

The file is a plain dict saved with :func:`torch.save` and read with ``torch.load(...,
weights_only=True)`` (tensors, dicts, lists, numbers, strings and None only)::

    format        "vistoolbox.stylizer"      version   1
    config        GeneratorConfig as a dict (mode, width, res_blocks, noise_channels, input_skip)
    state_dict    the generator's weights
    style         {"name", "sha256", "size": [H, W]}  — sha256 of the style file's bytes
    descriptor    the loss network: model.describe() + style_layers, content_layer
    loss_weights  {"content", "style", "tv"}
    training      {"steps", "size", "batch_size", "lr", "seed", "dataset": {...}}
    history       {"step": [...], "total": [...], "content": [...], "style": [...], "tv": [...]}
    optimizer     Adam state (for resuming) or None

``stylize(load_stylizer("s.pt"), images, strength=0.8)`` needs no loss network.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from ..errors import VisUsageError
from ..images import DEFAULT_MAX_PIXELS, load_tensor, save_png
from ..limits import MAX_BATCH_PIXELS, MAX_COUNT, batch_pixels, number, side, whole
from ..weights import save_atomic
from .generator import GeneratorConfig, StyleGenerator, texture_noise
from .training import canonical, read_checkpoint

__all__ = ["FORMAT", "generate_texture", "HISTORY_KEYS", "load_stylizer", "output_names", "save_stylizer", "stylize",
           "stylize_files", "Stylizer", "texture_files", "VERSION"]

FORMAT = "vistoolbox.stylizer"
VERSION = 1
HISTORY_KEYS = ("step", "total", "content", "style", "tv")


@dataclass
class Stylizer:
    """A generator plus the record of how it was trained (see the module doc for the fields)."""

    generator: StyleGenerator
    style: dict[str, Any] = field(default_factory=dict)
    descriptor: dict[str, Any] = field(default_factory=dict)
    loss_weights: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    optimizer: dict[str, Any] | None = None

    @property
    def config(self) -> GeneratorConfig:
        return self.generator.config

    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def steps(self) -> int:
        return int(self.training.get("steps", 0))

    def to_dict(self) -> dict[str, Any]:
        """The file payload (only types ``torch.load(weights_only=True)`` accepts)."""
        return {"format": FORMAT, "version": VERSION, "config": self.config.to_dict(),
                "state_dict": {k: v.detach().cpu().clone() for k, v in self.generator.state_dict().items()},
                "style": dict(self.style), "descriptor": dict(self.descriptor),
                "loss_weights": dict(self.loss_weights), "training": dict(self.training),
                "history": {k: list(v) for k, v in self.history.items()}, "optimizer": self.optimizer}


def save_stylizer(stylizer: Stylizer, path: str | Path) -> Path:
    """Write the stylizer file atomically (a temp file, then rename)."""
    save_atomic(canonical(stylizer.to_dict()), Path(path))
    return Path(path)


def load_stylizer(path: str | Path, device: str | torch.device = "cpu") -> Stylizer:
    """Read a stylizer file with ``weights_only=True``; a missing or foreign file is a usage error."""
    data = read_checkpoint(path, FORMAT, VERSION, "stylizer", "vis train-stylizer")
    try:
        generator = StyleGenerator(GeneratorConfig.from_dict(data["config"]))
        generator.load_state_dict(data["state_dict"])
        stylizer = Stylizer(generator=generator, style=dict(data["style"]), descriptor=dict(data["descriptor"]),
                            loss_weights=dict(data["loss_weights"]), training=dict(data["training"]),
                            history={k: list(data["history"].get(k, [])) for k in HISTORY_KEYS},
                            optimizer=data.get("optimizer"))
    except VisUsageError as exc:
        raise VisUsageError(f"{str(path)!r} is not a usable stylizer file: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise VisUsageError(f"{str(path)!r} is not a usable stylizer file ({type(exc).__name__}: {reason})") from None
    generator.eval().to(device)
    return stylizer


def _check_strength(strength: float) -> None:
    if not 0.0 <= number(strength, "strength") <= 1.0:
        raise VisUsageError(f"`strength` must be between 0 and 1, got {strength}")


def _batches(images: Sequence[torch.Tensor], batch_size: int) -> list[list[int]]:
    """Indices grouped into runs of consecutive same-size images, at most `batch_size` each and at
    most :data:`~vistoolbox.limits.MAX_BATCH_PIXELS` together (a bigger image runs alone)."""
    groups: list[list[int]] = []
    for i, image in enumerate(images):
        last = groups[-1] if groups else None
        pixels = image.shape[-1] * image.shape[-2]
        if (last and len(last) < batch_size and images[last[0]].shape[-2:] == image.shape[-2:]
                and (len(last) + 1) * pixels <= MAX_BATCH_PIXELS):
            last.append(i)
        else:
            groups.append([i])
    return groups


def stylize(stylizer: Stylizer, images: torch.Tensor | Sequence[torch.Tensor], strength: float = 1.0,
            batch_size: int = 4) -> torch.Tensor | list[torch.Tensor]:
    """Apply an image-mode stylizer; each output has its input's size.

    Args:
        images: a batch ``[N, 3, H, W]`` (returns a tensor) or a list of ``[3, H, W]`` /
            ``[1, 3, H, W]`` tensors of any sizes (returns a list of ``[1, 3, H, W]``), RGB 0–1.
        strength: 1 = the generator's output, 0 = the input; in between a linear blend.
        batch_size: images of equal size that follow each other run together, this many at a time.
    """
    _check_strength(strength)
    if stylizer.mode != "image":
        raise VisUsageError("this stylizer was trained in texture mode: it makes textures from noise "
                            "(`noise`), it does not take images")
    as_batch = isinstance(images, torch.Tensor) and images.dim() == 4
    items = [im if im.dim() == 4 else im.unsqueeze(0) for im in images]  # a batch iterates as [3, H, W]
    for im in items:
        if im.shape[-3] != 3:
            raise VisUsageError(f"stylize takes RGB images [3, H, W], got shape {list(im.shape)}")
    device = next(stylizer.generator.parameters()).device
    outputs: list[torch.Tensor] = [torch.empty(0)] * len(items)
    stylizer.generator.eval()
    with torch.inference_mode():
        for group in _batches(items, max(1, batch_size)):
            x = torch.cat([items[i] for i in group]).to(device)
            y = stylizer.generator(x)
            y = x + strength * (y - x) if strength < 1 else y
            for j, i in enumerate(group):
                outputs[i] = y[j:j + 1].cpu()
    return torch.cat(outputs) if as_batch else outputs


def generate_texture(stylizer: Stylizer, size: int | tuple[int, int] = 512, count: int = 1,
                       seed: int = 0) -> torch.Tensor:
    """Texture-mode stylizer: `count` textures ``[count, 3, H, W]`` from seeded noise."""
    if stylizer.mode != "texture":
        raise VisUsageError("this stylizer was trained in image mode: give it images to stylize "
                            "(`noise` is for stylizers trained in texture `mode`)")
    h, w = (size, size) if isinstance(size, int) else size
    h, w = side(h, "size"), side(w, "size")
    batch_pixels(whole(count, "count", 1, MAX_COUNT), h, w, "count")
    device = next(stylizer.generator.parameters()).device
    noise = texture_noise(count, h, w, stylizer.config.noise_channels,
                          torch.Generator().manual_seed(seed), device)
    stylizer.generator.eval()
    with torch.inference_mode():
        return stylizer.generator(noise).cpu()


def texture_files(stylizer: Stylizer, out_dir: str | Path, size: int | tuple[int, int] = 512, count: int = 1,
                  seed: int = 0) -> list[Path]:
    """Texture-mode stylizer → ``texture_000.png`` … in `out_dir` (texture ``i`` uses seed ``seed + i``,
    so one more texture never changes the earlier ones)."""
    whole(count, "count", 1, MAX_COUNT)
    return [save_png(generate_texture(stylizer, size, 1, seed + i), Path(out_dir) / f"texture_{i:03d}.png")
            for i in range(count)]


def output_names(paths: Sequence[str | Path]) -> list[str]:
    """``<stem>.png`` per input; repeated stems get ``_2``, ``_3`` … so nothing is overwritten."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = Path(p).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}_{seen[stem]}.png")
    return names


def stylize_files(stylizer: Stylizer, inputs: Sequence[str | Path], out_dir: str | Path, strength: float = 1.0,
                  batch_size: int = 4, max_pixels: int = DEFAULT_MAX_PIXELS, quiet: bool = False) -> list[Path]:
    """Stylize image files into `out_dir` as PNGs of the same size; returns the written paths.

    All inputs are checked (readable images) before any work; files are written as each batch
    ends, with a progress bar on stderr unless `quiet`.
    """
    _check_strength(strength)
    batch_size, max_pixels = whole(batch_size, "batch_size"), whole(max_pixels, "max_pixels")
    if not inputs:
        raise VisUsageError("give at least one input image")
    if stylizer.mode != "image":
        stylize(stylizer, [])  # raises the texture-mode message
    images = [load_tensor(p, max_pixels=max_pixels) for p in inputs]
    names = output_names(inputs)
    written: list[Path] = []
    with tqdm(total=len(images), disable=quiet, file=sys.stderr, desc="stylize", unit="img") as bar:
        for group in _batches(images, max(1, batch_size)):
            results = stylize(stylizer, [images[i] for i in group], strength=strength, batch_size=len(group))
            for i, result in zip(group, results):
                written.append(save_png(result, Path(out_dir) / names[i]))
            bar.update(len(group))
    return written
