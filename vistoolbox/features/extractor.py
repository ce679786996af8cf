"""The one feature extractor every view shares: forward hooks that stop the pass early.

``FeatureExtractor(model, ["conv4", "features.10"])(x)`` returns ``{name: tensor}`` keyed by the
names as given. The forward pass is cut as soon as every requested layer has produced its output,
so no compute is spent past the deepest one. It works with and without gradients and on
branching graphs (ResNet, GoogLeNet), because it stops on "all captured", not on module order.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from torch import nn

from ..errors import VisUsageError, unknown
from ..models import LoadedModel
from .layers import layer_layout
from .layout import Layout, decide_layout
from .receptive import trace_geometry

__all__ = ["FeatureExtractor"]


class _Stop(Exception):
    """Raised inside a hook to end the forward pass once every layer is captured."""


class FeatureExtractor:
    """Capture the outputs of named layers of a model, stopping the forward pass early.

    Args:
        model: a :class:`LoadedModel` (aliases such as ``conv4`` resolve) or a plain ``nn.Module``.
        layers: layer names or aliases, in any order.
        stop_early: cut the forward pass after the last requested layer (default True).
        channels_first: return every output as ``[N, C, H, W]`` (``[N, C]`` for fc layers) whatever
            its layout — channels-last maps permuted, token grids reshaped without their class
            token (:mod:`vistoolbox.features.layout`); a layer whose layout cannot be told is a
            usage error. Default False: the outputs as the modules return them.
        leaves: layers (names as given, among `layers`) whose outputs are returned as leaves that
            require grad: the pass runs without gradients up to them and with gradients after, so
            a gradient with respect to them costs no backward pass through earlier layers (the
            model goes on with a copy of each leaf: an in-place op downstream cannot touch it).

    :attr:`output` is what the model returned when the pass ran to its end (None when it stopped early).

    A module that runs several times in one pass is captured at its first call. Values are the
    modules' outputs as computed: a conv hooked before an in-place op keeps its
    pre-activation value (:func:`~vistoolbox.load_model` makes ReLUs out-of-place; should a later
    op still modify a captured tensor in place, the pass is re-run with that layer's output
    cloned). The model is never modified.

    Example:
        >>> with FeatureExtractor(model, ["conv5_3", "relu5_3"]) as fx:
        ...     feats = fx(batch)          # {'conv5_3': [N, 512, 14, 14], 'relu5_3': ...}
    """

    def __init__(self, model: LoadedModel | nn.Module, layers: Sequence[str], stop_early: bool = True,
                 channels_first: bool = False, leaves: Sequence[str] = ()):
        self._layouts: dict[str, Layout] | None = None
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
        unknown_leaves = [name for name in leaves if name not in self.layers]
        if unknown_leaves:
            raise ValueError(f"leaves {unknown_leaves} are not among the layers {self.layers}")
        self._leaves = {path for name, path in zip(self.layers, self.paths) if name in leaves}
        self.output: object = None
        self._targets = sorted(set(resolved))
        self._captured: dict[str, tuple[torch.Tensor, int]] = {}
        self._clone: set[str] = set()
        self._active = False
        self.channels_first = channels_first
        if channels_first and isinstance(model, LoadedModel):
            self._layouts = {p: layer_layout(model, p) for p in self._targets}
        self._handles = [self.module.get_submodule(p).register_forward_hook(self._hook_for(p))
                         for p in self._targets]

    def _hook_for(self, path: str):
        def hook(_module, _inputs, output):
            if not self._active or path in self._captured:
                return None
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if path in self._leaves:
                leaf = tensor.detach().requires_grad_(True)
                self._captured[path] = (leaf, leaf._version)
                torch.set_grad_enabled(True)  # from here on (the pass's no_grad context restores it)
                if self.stop_early and len(self._captured) == len(self._targets):
                    raise _Stop
                copy = leaf.clone()
                return (copy, *output[1:]) if isinstance(output, (tuple, list)) else copy
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
        self.output = None
        grad = torch.no_grad() if self._leaves else contextlib.nullcontext()
        try:
            with grad:
                self.output = self.module(x)
        except _Stop:
            pass
        finally:
            self._active = False

    def _layouts_at(self, x: torch.Tensor) -> dict[str, Layout]:
        """Layouts of the targets of a plain module, traced once at the size of the first input."""
        if self._layouts is None:
            geometry = trace_geometry(self.module, tuple(x.shape[-2:]), names=self._targets, channels=x.shape[1])
            layouts = {p: decide_layout(geometry[p].shape, geometry[p].axes) if p in geometry else None
                       for p in self._targets}
            bad = [p for p, layout in layouts.items() if layout is None]
            if bad:
                raise VisUsageError(f"layer {bad[0]!r}: vistoolbox cannot tell where its channels and positions "
                                    "are; load the model with `layouts` to give it")
            self._layouts = layouts  # type: ignore[assignment]
        return self._layouts  # type: ignore[return-value]

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model on `x` and return ``{layer name as given: output tensor}``."""
        layouts = self._layouts_at(x) if self.channels_first else {}
        self._run(x)
        stale = {p for p, (t, v) in self._captured.items() if t._version != v}
        if stale:  # a later in-place op overwrote a hooked tensor: re-run cloning those outputs
            self._clone |= stale
            self._run(x)
        missing = [p for p in self._targets if p not in self._captured]
        if missing:
            raise RuntimeError(f"layers {missing} did not run in the forward pass")
        if layouts:
            return {name: layouts[path].to_channels_first(self._captured[path][0])
                    for name, path in zip(self.layers, self.paths)}
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
