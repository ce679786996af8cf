"""``vistoolbox.watch``: record how a network learns, from inside the user's own training loop.

::

    with vistoolbox.watch(model, out="RUN", every=50, probe=images) as w:
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            w.step(loss=loss.item(), metrics={"accuracy": acc})
        w.checkpoint()               # the probe images' top-k per unit, now

Every `every` steps the watcher runs the probe batch through the model (eval mode, no gradients,
hooks on the watched layers only for that pass) and appends one ``stats`` record to
``RUN/training/log.jsonl`` (see :mod:`vistoolbox.rundir`): per layer and unit the statistics of
:mod:`.stats`, with the loss and metrics given to :meth:`Watcher.step`. The probe pass leaves the
training untouched: no random numbers drawn, batch-norm statistics not updated, every module's
train/eval mode restored. Under DistributedDataParallel only rank 0 records (the others' calls do
nothing); the gradients it reads are the all-reduced ones.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..errors import VisUsageError, unknown
from ..images import save_png
from ..limits import whole
from ..rundir import TRAINING_LOG, TrainingLogWriter, probe_path, write_manifest
from .stats import activation_stats, filter_norms, probe_scores, unit_count

__all__ = ["Watcher", "is_writer", "watch", "watched_layers"]


def is_writer() -> bool:
    """True in a single process and on rank 0 of a ``torch.distributed`` job: the one that records."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper (else the model)."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def watched_layers(module: nn.Module, layers: Sequence[str] | None) -> dict[str, nn.Module]:
    """Name → module of the layers to watch: the named ones, else every conv and linear layer."""
    named = dict(module.named_modules())
    if layers is None:
        chosen = [n for n, m in named.items() if n and isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    else:
        chosen = list(dict.fromkeys(layers))
        for name in chosen:
            if not name or name not in named:
                raise unknown("layer", name, [n for n in named if n])
    if not chosen:
        raise VisUsageError("the model has no conv or linear layer to watch; name some with `layers`")
    return {name: named[name] for name in chosen}


class Watcher:
    """See :func:`watch`. Use it as a context manager; :meth:`step` once per training step."""

    def __init__(self, model: nn.Module, out: str | Path, *, every: int = 50, probe: torch.Tensor | None = None,
                 layers: Sequence[str] | None = None, topk: int = 9, topk_every: int | None = None,
                 probe_images: torch.Tensor | None = None, start_step: int = 0,
                 manifest: Mapping[str, Any] | None = None) -> None:
        self.module = unwrap(model)
        self.out = Path(out)
        self.every = whole(every, "every")
        self.topk = whole(topk, "topk")
        self.topk_every = None if topk_every is None else whole(topk_every, "topk_every")
        self.layers = watched_layers(self.module, layers)
        if probe is not None and (not isinstance(probe, torch.Tensor) or probe.ndim < 2 or not len(probe)):
            raise VisUsageError("`probe` must be a batch of model inputs, a tensor [N, C, H, W] with N ≥ 1")
        self.probe = probe
        self.probe_images = probe_images
        self.steps = whole(start_step, "start_step", minimum=0)
        self.manifest = dict(manifest or {})
        self.writer = is_writer()
        self._log: TrainingLogWriter | None = None

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> "Watcher":
        if self.writer:
            self.write_manifest("training")
            self._save_probe_images()
            self._log = TrainingLogWriter(self.out)
            self._append({"kind": "start", "every": self.every, "topk": self.topk,
                          "probe": 0 if self.probe is None else len(self.probe),
                          "layers": {name: {"units": unit_count(m), "type": type(m).__name__}
                                     for name, m in self.layers.items()}})
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
            self.write_manifest("complete" if kind is None else "interrupted")

    def write_manifest(self, status: str, **fields: Any) -> None:
        """``RUN/manifest.json`` of the run (rank 0 only): the identity given as `manifest` (and
        `fields`, which update it), `status`, and where the training log is."""
        if not self.writer:
            return
        self.manifest.update(fields)
        training = {"log": TRAINING_LOG, "every": self.every,
                    "layers": {name: {"units": unit_count(m), "type": type(m).__name__}
                               for name, m in self.layers.items()}}
        identity = {"layers": {}, **self.manifest}
        write_manifest(self.out, identity, status, views=[], counts={}, extra={"training": training})

    # ------------------------------------------------------------------ recording
    def step(self, loss: float | torch.Tensor | None = None, metrics: Mapping[str, float] | None = None) -> None:
        """Count one training step; every `every` steps record the statistics. Call it after
        ``loss.backward()`` (before the next ``zero_grad``), so the gradients are there to read."""
        self.steps += 1
        if not self.writer:
            return
        if self.steps % self.every == 0:
            self.record(loss, metrics)
        if self.topk_every and self.steps % self.topk_every == 0:
            self.checkpoint()

    def record(self, loss: float | torch.Tensor | None = None, metrics: Mapping[str, float] | None = None) -> None:
        """Append one ``stats`` record now (what :meth:`step` does every `every` steps)."""
        if not self.writer:
            return
        outputs = self.probe_outputs()
        layers = {}
        for name, module in self.layers.items():
            entry = filter_norms(module)
            if name in outputs:
                entry.update(activation_stats(outputs[name]))
            layers[name] = entry
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else loss
        self._append({"kind": "stats", "loss": value, "metrics": {k: float(v) for k, v in (metrics or {}).items()},
                      "layers": layers})

    def checkpoint(self, label: str | None = None) -> None:
        """Append a ``topk`` record: for each unit, the probe images that excite it most (index and
        value of each image's maximum over positions), best first."""
        if not self.writer or self.probe is None:
            return
        layers = {}
        for name, output in self.probe_outputs().items():
            scores = probe_scores(output.float())
            values, index = scores.topk(min(self.topk, scores.shape[0]), dim=0)
            layers[name] = {"index": index.T.tolist(), "value": values.T.tolist()}
        self._append({"kind": "topk", "label": label, "layers": layers})

    def log_epoch(self, epoch: int, **fields: Any) -> None:
        """Append an ``epoch`` record (``vis train``: test accuracy, train loss, checkpoint path)."""
        if self.writer:
            self._append({"kind": "epoch", "epoch": int(epoch), **fields})

    def probe_outputs(self) -> dict[str, torch.Tensor]:
        """The watched layers' outputs for the probe batch (none without a probe), computed in eval
        mode without gradients; the hooks exist only during this pass."""
        if self.probe is None:
            return {}
        captured: dict[str, torch.Tensor] = {}

        def keep(name: str):
            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                tensor = output[0] if isinstance(output, (tuple, list)) else output
                if isinstance(tensor, torch.Tensor):
                    captured[name] = tensor.detach()
            return hook

        modes = {m: m.training for m in self.module.modules()}
        handles = [m.register_forward_hook(keep(name)) for name, m in self.layers.items()]
        try:
            self.module.eval()
            device = next(self.module.parameters(), self.probe).device
            with torch.no_grad():
                self.module(self.probe.to(device))
        finally:
            for handle in handles:
                handle.remove()
            for m, mode in modes.items():
                m.training = mode
        return captured

    def _append(self, record: dict[str, Any]) -> None:
        if self._log is None:
            raise VisUsageError("the watcher records inside its `with` block only (with vistoolbox.watch(...) as w)")
        self._log.append({"kind": record.pop("kind"), "step": self.steps, "time": time.time(), **record})

    def _save_probe_images(self) -> None:
        if self.probe_images is None:
            return
        for index, image in enumerate(self.probe_images):
            path = probe_path(self.out, index)
            if not path.is_file():
                save_png(image.detach().float().clamp(0, 1).cpu(), path)


def watch(model: nn.Module, out: str | Path, *, every: int = 50, probe: torch.Tensor | None = None,
          layers: Sequence[str] | None = None, topk: int = 9, topk_every: int | None = None,
          probe_images: torch.Tensor | None = None, start_step: int = 0,
          manifest: Mapping[str, Any] | None = None) -> Watcher:
    """Watch `model` train, writing the run directory `out` (see the module doc).

    `probe` is a fixed batch of model inputs (normalised, on any device) whose activations are
    recorded; `probe_images` (0–1 RGB ``[N, 3, H, W]``, optional) is how they look, stored as
    ``RUN/training/probe/img_0000.png``. `layers` names the modules to watch (default: every conv and
    linear layer). `topk_every` also records the probe top-k every that many steps (besides
    :meth:`Watcher.checkpoint`). `start_step` continues the step count of a resumed training, and
    `manifest` holds identity fields for ``RUN/manifest.json`` (``model``, ``weights``, ``seed``…)."""
    return Watcher(model, out, every=every, probe=probe, layers=layers, topk=topk, topk_every=topk_every,
                   probe_images=probe_images, start_step=start_step, manifest=manifest)
