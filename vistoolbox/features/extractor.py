"""The one feature extractor every view shares: forward hooks that stop the pass early.

``FeatureExtractor(model, ["conv4", "features.10"])(x)`` returns ``{name: tensor}`` keyed by the
names as given. The forward pass is cut as soon as every requested layer has produced its output,
so no compute is spent past the deepest one. It works with and without gradients and on
branching graphs (ResNet, GoogLeNet), because it stops on "all captured", not on module order.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import unknown
from ..models import LoadedModel

__all__ = ["FeatureExtractor"]


class _Stop(Exception):
    """Raised inside a hook to end the forward pass once every layer is captured."""


class FeatureExtractor:
    """Capture the outputs of named layers of a model, stopping the forward pass early.

    Args:
        model: a :class:`LoadedModel` (aliases such as ``conv4`` resolve) or a plain ``nn.Module``.
        layers: layer names or aliases, in any order.
        stop_early: cut the forward pass after the last requested layer (default True).

    Values are the modules' outputs as computed: a conv hooked before an in-place op keeps its
    pre-activation value (:func:`~vistoolbox.load_model` makes ReLUs out-of-place; should a later
    op still modify a captured tensor in place, the pass is re-run with that layer's output
    cloned). The model is never modified.

    Example:
        >>> with FeatureExtractor(model, ["conv5_3", "relu5_3"]) as fx:
        ...     feats = fx(batch)          # {'conv5_3': [N, 512, 14, 14], 'relu5_3': ...}
    """

    def __init__(self, model: LoadedModel | nn.Module, layers: Sequence[str], stop_early: bool = True):
        if isinstance(model, LoadedModel):
            self.module = model.module
            resolved = [model.resolve(name) for name in layers]
        else:
            self.module = model
            names = {n for n, _ in model.named_modules() if n}
            for name in layers:
                if name not in names:
                    raise unknown("layer", name, sorted(names))
            resolved = list(layers)
        if not layers:
            raise ValueError("FeatureExtractor needs at least one layer")
        self.layers = list(layers)
        self.paths = resolved
        self.stop_early = stop_early
        self._targets = sorted(set(resolved))
        self._captured: dict[str, tuple[torch.Tensor, int]] = {}
        self._clone: set[str] = set()
        self._active = False
        self._handles = [self.module.get_submodule(p).register_forward_hook(self._hook_for(p))
                         for p in self._targets]

    def _hook_for(self, path: str):
        def hook(_module, _inputs, output):
            if not self._active:
                return None
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if path in self._clone:
                tensor = tensor.clone()
            self._captured[path] = (tensor, tensor._version)
            if self.stop_early and len(self._captured) == len(self._targets):
                raise _Stop
            return None
        return hook

    def _run(self, x: torch.Tensor) -> None:
        self._captured = {}
        self._active = True
        try:
            self.module(x)
        except _Stop:
            pass
        finally:
            self._active = False

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model on `x` and return ``{layer name as given: output tensor}``."""
        self._run(x)
        stale = {p for p, (t, v) in self._captured.items() if t._version != v}
        if stale:  # a later in-place op overwrote a hooked tensor: re-run cloning those outputs
            self._clone |= stale
            self._run(x)
        missing = [p for p in self._targets if p not in self._captured]
        if missing:
            raise RuntimeError(f"layers {missing} did not run in the forward pass")
        return {name: self._captured[path][0] for name, path in zip(self.layers, self.paths)}

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
