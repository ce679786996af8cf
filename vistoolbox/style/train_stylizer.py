"""Training a feed-forward stylizer (Johnson et al. 2016; Ulyanov et al. 2016) against the shared
:class:`~vistoolbox.style.losses.StyleLoss` (Gram style loss + content loss from one extractor pass).

Every step draws its batch from the step number alone (seeded epoch permutations of the dataset,
seeded random crops and flips; seeded noise in texture mode), and Adam's state is stored in each
checkpoint, so a run interrupted and resumed gives the same weights as an uninterrupted run with
the same seed on the same device.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import VisUsageError
from ..images import (DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, find_images, image_size, load_tensor, named, open_image,
                      to_tensor)
from ..limits import batch_pixels, learning_rate, side, weight, whole
from ..limits import steps as limit_steps
from ..models import LoadedModel, as_model
from ..weights import sha256_file
from .generator import GeneratorConfig, StyleGenerator, texture_noise
from .losses import StyleLoss
from .stylizer import Stylizer, load_stylizer, save_stylizer
from .training import check_out, check_resume, run_steps

__all__ = ["batch_indices", "dataset_record", "DEFAULT_CONTENT_LAYER", "DEFAULT_STYLE_LAYERS", "DEFAULT_WEIGHTS",
           "list_images", "load_crop", "RESUME_KEYS", "style_identity", "train_stylizer", "training_batch"]

#: Johnson et al.'s layers on VGG16: style relu1_2, relu2_2, relu3_3, relu4_3; content relu2_2.
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
DEFAULT_CONTENT_LAYER = "relu2_2"
#: Loss weights for StyleLoss's normalised terms (each ≈ a relative error; see losses.py).
DEFAULT_WEIGHTS = {"content": 1.0, "style": 10.0, "tv": 10.0}
#: Settings a resumed run must share with its checkpoint.
RESUME_KEYS = ("size", "batch_size", "lr", "seed", "dataset")


def list_images(folder: str | Path, quiet: bool = False) -> list[Path]:
    """Image files under `folder` (recursive, sorted) whose header reads as an image; the others are
    skipped, as mining skips them, and listed on stderr (unless `quiet`). None found, or none
    readable, is a usage error."""
    if not str(folder).strip():
        raise VisUsageError("`dataset` is empty; give a folder of training images")
    root = Path(folder)
    if not root.is_dir():
        raise VisUsageError(f"`dataset` folder {str(root)!r} does not exist")
    files = find_images(root)
    if not files:
        raise VisUsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}")
    readable, skipped = [], []
    for path in files:
        try:
            image_size(path)
            readable.append(path)
        except VisUsageError:
            skipped.append(path.relative_to(root).as_posix())
    if not readable:
        raise VisUsageError(f"`dataset` {str(root)!r}: none of its {named(skipped)} can be read as an image")
    if skipped and not quiet:
        print(f"vis train-stylizer: skipped {named(skipped)} (unreadable)", file=sys.stderr, flush=True)
    return readable


def dataset_record(root: str | Path, files: Sequence[Path]) -> dict[str, Any]:
    """Identity of a dataset: folder, image count and a fingerprint of the relative paths."""
    rel = [p.relative_to(root).as_posix() for p in files]
    return {"root": str(root), "count": len(rel),
            "fingerprint": hashlib.sha256("\n".join(rel).encode()).hexdigest()[:16]}


def _step_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded from (seed, keys) — the same numbers whenever the step is replayed."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def batch_indices(step: int, batch_size: int, count: int, seed: int) -> list[int]:
    """Dataset indices of `step`'s batch: consecutive slices of per-epoch seeded permutations."""
    out: list[int] = []
    position = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(position, count)
        perm = torch.randperm(count, generator=_step_generator(seed, 0, epoch)).tolist()
        take = perm[offset:offset + batch_size - len(out)]
        out += take
        position += len(take)
    return out


def load_crop(path: Path, size: int, generator: torch.Generator, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Shorter side scaled to `size`, a random `size`×`size` crop, a random horizontal flip: ``[3, S, S]``."""
    image = open_image(path, max_pixels)
    scale = size / min(image.size)
    new = (max(size, round(image.width * scale)), max(size, round(image.height * scale)))
    image = image.resize(new, resample=2)  # bilinear
    left = int(torch.randint(image.width - size + 1, (1,), generator=generator))
    top = int(torch.randint(image.height - size + 1, (1,), generator=generator))
    tensor = to_tensor(image.crop((left, top, left + size, top + size)))[0]
    return tensor.flip(-1) if bool(torch.rand(1, generator=generator) < 0.5) else tensor


def training_batch(files: Sequence[Path], step: int, batch_size: int, size: int, seed: int) -> torch.Tensor:
    """The content batch ``[B, 3, size, size]`` of `step` (deterministic in seed and step)."""
    gen = _step_generator(seed, 1, step)
    return torch.stack([load_crop(files[i], size, gen) for i in batch_indices(step, batch_size, len(files), seed)])


def style_identity(style: str | Path | torch.Tensor) -> dict[str, Any]:
    """Name and sha256 of the style image (the file's bytes, or a tensor's float32 bytes)."""
    if isinstance(style, torch.Tensor):
        data = style.detach().float().cpu().contiguous().numpy().tobytes()
        return {"name": "<tensor>", "sha256": hashlib.sha256(data).hexdigest()}
    return {"name": Path(style).name, "sha256": sha256_file(style)}


def _comparable(key: str, value: Any) -> Any:
    """The part of a training setting that must match on resume (a dataset may move folders)."""
    return {k: value.get(k) for k in ("count", "fingerprint")} if key == "dataset" and value else value


def _check_resume(previous: Stylizer, current: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint trained with different settings (names the first difference)."""
    pairs = [("mode/architecture", previous.config.to_dict(), current["config"]),
             ("style image", previous.style.get("sha256"), current["style"]["sha256"]),
             ("loss network", {k: previous.descriptor.get(k) for k in current["descriptor"]}, current["descriptor"]),
             ("loss weights", previous.loss_weights, current["loss_weights"])]
    check_resume(pairs + [(key, _comparable(key, previous.training.get(key)),
                           _comparable(key, current["training"][key])) for key in RESUME_KEYS])


def train_stylizer(model: LoadedModel | str, style: str | Path | torch.Tensor, dataset: str | Path | None = None, *,
                   out: str | Path | None = None, mode: str = "image",
                   size: int = 256, style_size: int | None = None, steps: int = 2000, batch_size: int = 4,
                   lr: float = 1e-3, content_weight: float = DEFAULT_WEIGHTS["content"],
                   style_weight: float = DEFAULT_WEIGHTS["style"], tv_weight: float = DEFAULT_WEIGHTS["tv"],
                   style_layers: Sequence[str] | Mapping[str, float] | None = None,
                   content_layer: str | None = None, width: int = 32, res_blocks: int = 5,
                   noise_channels: int = 8, input_skip: bool = False, seed: int = 0, checkpoint_every: int = 100,
                   resume: bool = False, quiet: bool = False) -> Stylizer:
    """Train a stylizer for `style` on the images under `dataset` (image mode) or from noise
    (``mode="texture"``, no dataset needed); returns it and, with `out`, keeps it saved there.

    Args:
        model: the loss network, a :class:`LoadedModel` or a model name (loaded with its default
            weights; ``"vgg16"`` is the offline ``hed`` VGG16).
        style: style image file (or a 0–1 tensor ``[1, 3, H, W]``); scaled so its longest side
            is `style_size` (default `size`).
        size: side of the square training crops (texture mode: of the noise).
        steps: total optimisation steps (a resumed run continues up to this number).
        content_weight, style_weight, tv_weight: weights of StyleLoss's normalised terms.
        style_layers, content_layer: default Johnson et al.'s relu1_2, relu2_2, relu3_3, relu4_3
            and relu2_2 (VGG aliases; give module paths or other aliases for other models).
        width, res_blocks, noise_channels, input_skip: the generator's architecture
            (:class:`GeneratorConfig`; `input_skip` starts it as the identity).
        checkpoint_every: save to `out` every this many steps (and at the end and on Ctrl-C).
        resume: continue the checkpoint at `out` (same settings required); without it an existing
            `out` is refused rather than overwritten.
    """
    config = GeneratorConfig(mode=mode, width=width, res_blocks=res_blocks, noise_channels=noise_channels,
                             input_skip=input_skip)
    size = side(size, "size")
    style_size = size if style_size is None else side(style_size, "style_size")
    steps, checkpoint_every = limit_steps(steps, "steps"), whole(checkpoint_every, "checkpoint_every")
    batch_pixels(whole(batch_size, "batch_size"), size, size, "batch_size")
    learning_rate(lr, "lr")
    for name, value in (("content_weight", content_weight), ("style_weight", style_weight),
                        ("tv_weight", tv_weight)):
        weight(value, name)
    whole(seed, "seed", 0)
    out = Path(out) if out is not None else None
    check_out(out, resume, "stylizer")
    style_image = style if isinstance(style, torch.Tensor) else load_tensor(style, size=style_size)
    files: list[Path] = []
    data_record: dict[str, Any] | None = None
    if mode == "image":
        if dataset is None:
            raise VisUsageError("image mode needs `dataset` DIR (a folder of training images)")
        files = list_images(dataset, quiet)
        data_record = dataset_record(dataset, files)
    model = as_model(model)
    loss = StyleLoss(model, style_layers=style_layers or list(DEFAULT_STYLE_LAYERS),
                     content_layer=(content_layer or DEFAULT_CONTENT_LAYER) if mode == "image" else None,
                     content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    loss.set_style([style_image])
    device = model.device
    current = {"config": config.to_dict(), "style": {**style_identity(style), "size": list(style_image.shape[-2:])},
               "descriptor": {**model.describe(), **{k: v for k, v in loss.describe().items() if "weight" not in k}},
               "loss_weights": {"content": content_weight if mode == "image" else 0.0, "style": style_weight,
                                "tv": tv_weight},
               "training": {"size": size, "batch_size": batch_size, "lr": lr, "seed": seed, "dataset": data_record}}

    if resume:
        stylizer = load_stylizer(out, device=device)  # type: ignore[arg-type]
        _check_resume(stylizer, current)
        generator = stylizer.generator
    else:
        torch.manual_seed(seed)
        generator = StyleGenerator(config).to(device)
        stylizer = Stylizer(generator=generator, style=current["style"], descriptor=current["descriptor"],
                            loss_weights=current["loss_weights"], training={**current["training"], "steps": 0})
    optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
    if stylizer.optimizer:
        optimizer.load_state_dict(stylizer.optimizer)
    start = stylizer.steps

    def checkpoint(done: int) -> None:
        stylizer.training["steps"] = done
        stylizer.optimizer = optimizer.state_dict()
        if out is not None:
            save_stylizer(stylizer, out)

    def one_step(step: int) -> dict[str, float]:
        if mode == "image":
            content = training_batch(files, step, batch_size, size, seed).to(device)
            loss.set_content(content)
            x = content
        else:
            x = texture_noise(batch_size, size, size, noise_channels, _step_generator(seed, 2, step), device)
        optimizer.zero_grad(set_to_none=True)
        total, terms = loss(generator(x))
        total.backward()
        optimizer.step()
        return {"total": total.item(),
                **{k: float(terms[k].item()) if k in terms else 0.0 for k in ("style", "content", "tv")}}

    generator.train()
    run_steps(one_step, start=start, steps=steps, checkpoint_every=checkpoint_every, checkpoint=checkpoint,
              history=stylizer.history, desc="train-stylizer", quiet=quiet)
    generator.eval()
    loss.close()
    return stylizer
