"""``vis train``: train a classifier offline with the watcher on — checkpoints per epoch, resumable,
deterministic with the seed.

Each epoch shuffles the training split with a generator seeded by ``(seed, epoch)``, trains with Adam
and cross-entropy, measures the test accuracy and writes ``RUN/checkpoints/epoch_003.pt``: ``model``
(the state_dict, which ``--weights`` reads everywhere), ``optimizer``, ``rng`` (torch's generator
state), ``epoch``, ``step``, ``config`` and ``test_accuracy``, all readable with
``torch.load(weights_only=True)``. Running the same command again continues from the last
checkpoint; the resumed run's weights equal an uninterrupted run's bit for bit.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import VisRuntimeError, VisUsageError
from ..limits import number, whole
from ..models import Preprocessing, build_module, default_preprocessing, resolve_device
from ..rundir import MANIFEST, checkpoint_path, epoch_checkpoints, read_manifest
from ..small_cnn import SMALL_CNN
from ..weights import check_fits, save_atomic
from .data import FASHION_MNIST, Dataset, Split, load_dataset
from .watch import watch

__all__ = ["TrainResult", "epoch_order", "evaluate", "train"]

#: The config keys a resumed run must share with the checkpoint it continues (``epochs`` may grow).
_RESUME_KEYS = ("model", "dataset", "classes", "seed", "batch_size", "lr", "limit", "input_size", "every", "layers",
                "probe")


@dataclass
class TrainResult:
    """What ``train`` did: the last checkpoint, and the test accuracy of every epoch so far."""

    checkpoint: Path
    accuracies: list[float]
    resumed_from: int


def epoch_order(count: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of `epoch`, from a generator seeded by ``(seed, epoch)`` alone."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(count, generator=torch.Generator().manual_seed(state))


def evaluate(module: nn.Module, split: Split, preprocessing: Preprocessing, batch_size: int,
             device: torch.device) -> float:
    """Top-1 accuracy of `module` on `split` (eval mode, no gradients; the module's mode restored)."""
    was = module.training
    module.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x, y = split.batch(range(start, min(start + batch_size, len(split))))
            logits = module(preprocessing.normalize(x).to(device))
            correct += int((logits.argmax(1).cpu() == y).sum())
    module.train(was)
    return correct / max(1, len(split))


def _check_logits(module: nn.Module, data: Dataset, preprocessing: Preprocessing, device: torch.device,
                  model: str) -> None:
    x, _ = data.test.batch([0])
    was = module.training
    module.eval()
    with torch.no_grad():
        try:
            logits = module(preprocessing.normalize(x).to(device))
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise VisUsageError(f"`model` {model} cannot take {tuple(x.shape[1:])} inputs ({first}); try another "
                                "`input_size`") from None
    module.train(was)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != len(data.classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise VisUsageError(f"`model` {model} gives outputs {shape}; the dataset has {len(data.classes)} classes, "
                            f"so it must give logits [N, {len(data.classes)}]")


def _resume_state(out: Path, config: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The last checkpoint of the same training in `out` (None: start afresh). A different training
    there is a usage error unless `overwrite`, which removes it; a mining run there is never touched."""
    manifest_path = out / MANIFEST
    if manifest_path.is_file() and "training" not in read_manifest(manifest_path):
        raise VisUsageError(f"`out` {str(out)!r} holds a mining run, not a training run; give another `out`")
    found = epoch_checkpoints(out)
    if found:
        try:
            state = torch.load(found[-1][1], map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure: one line
            raise VisRuntimeError(f"cannot read the checkpoint {str(found[-1][1])!r} ({type(exc).__name__}); "
                                  "remove it to resume from the one before") from None
        old = state.get("config", {}) if isinstance(state, dict) else {}
        changed = [k for k in _RESUME_KEYS if old.get(k) != config.get(k)]
        if not changed:
            return state
        if not overwrite:
            raise VisUsageError(f"`out` {str(out)!r} holds another training (it differs in: {', '.join(changed)}); "
                                "give the same options to resume it, another `out`, or `overwrite`")
    if overwrite:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        shutil.rmtree(out / "training", ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
    return None


def train(out: str | Path, dataset: str = FASHION_MNIST, model: str = SMALL_CNN, *, epochs: int = 3,
          batch_size: int = 64, lr: float = 1e-3, seed: int = 0, limit: int | None = None, every: int = 50,
          layers: Sequence[str] | None = None, input_size: int | None = None, probe: int = 64,
          device: str = "auto", overwrite: bool = False, quiet: bool = False) -> TrainResult:
    """Train `model` (``smallcnn``, a torchvision name or model code) on `dataset` (``fashion-mnist``
    or an ImageFolder tree) into the run directory `out`, watched (see :func:`vistoolbox.watch`)."""
    from tqdm import tqdm

    out = Path(out)
    epochs, batch_size, every, probe = (whole(epochs, "epochs"), whole(batch_size, "batch_size"), whole(every, "every"),
                                        whole(probe, "probe"))
    lr = number(lr, "lr", positive=True)
    if limit is not None:
        limit = whole(limit, "limit")
    dev = resolve_device(device)
    preprocessing = default_preprocessing(model, input_size)
    data = load_dataset(dataset, preprocessing.input_size, limit)
    config = {"model": model, "dataset": data.name, "classes": data.classes, "seed": seed, "batch_size": batch_size,
              "lr": lr, "limit": limit, "input_size": preprocessing.input_size, "every": every,
              "layers": list(layers) if layers is not None else None, "probe": probe}
    state = _resume_state(out, config, overwrite)
    module = build_module(model, seed=seed, num_classes=len(data.classes), input_size=input_size).to(dev)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    start_epoch, step, accuracies = 0, 0, []
    if state is not None:
        if not isinstance(state.get("model"), dict):
            raise VisUsageError(f"the last checkpoint in {str(out)!r} holds no model state_dict; remove it to resume "
                                "from the one before")
        check_fits(module, state["model"], epoch_checkpoints(out)[-1][1])
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        start_epoch, step, accuracies = int(state["epoch"]), int(state["step"]), list(state["accuracies"])
    _check_logits(module, data, preprocessing, dev, model)
    last = checkpoint_path(out, start_epoch) if start_epoch else None
    if start_epoch >= epochs:
        return TrainResult(last or checkpoint_path(out, epochs), accuracies, start_epoch)
    shown, _ = data.test.batch(range(min(probe, len(data.test))))
    identity = {"model": model, "weights": str(last.resolve()) if last else "random", "seed": seed,
                "input_size": preprocessing.input_size, "preprocessing": preprocessing.to_dict(),
                "dataset": data.describe(), "train": {**config, "epochs": epochs}}
    loss_fn = nn.CrossEntropyLoss()
    with watch(module, out, every=every, probe=preprocessing.normalize(shown), probe_images=shown, layers=layers,
               start_step=step, manifest=identity) as watcher:
        if start_epoch == 0:
            watcher.checkpoint("epoch 0")
        for epoch in range(start_epoch + 1, epochs + 1):
            module.train()
            order = epoch_order(len(data.train), seed, epoch)
            losses = []
            batches = range(0, len(order), batch_size)
            for start in tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=quiet, file=sys.stderr,
                              unit="batch", leave=False):
                x, y = data.train.batch(order[start:start + batch_size])
                x, y = preprocessing.normalize(x).to(dev), y.to(dev)
                logits = module(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                accuracy = float((logits.detach().argmax(1) == y).float().mean())
                watcher.step(loss=losses[-1], metrics={"train_accuracy": accuracy})
            accuracies.append(evaluate(module, data.test, preprocessing, batch_size, dev))
            last = checkpoint_path(out, epoch)
            watcher.log_epoch(epoch, test_accuracy=accuracies[-1], train_loss=float(np.mean(losses)),
                              checkpoint=str(last.relative_to(out)))
            watcher.checkpoint(f"epoch {epoch}")
            save_atomic({"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                         "rng": {"torch": torch.get_rng_state()}, "epoch": epoch, "step": watcher.steps,
                         "config": config, "accuracies": accuracies, "classes": data.classes}, last)
            watcher.write_manifest("training", weights=str(last.resolve()))
            if not quiet:
                print(f"vis train: epoch {epoch}/{epochs}: train loss {np.mean(losses):.4f}, "
                      f"test accuracy {accuracies[-1]:.4f} → {last}", file=sys.stderr)
    return TrainResult(last, accuracies, start_epoch)
