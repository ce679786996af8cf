"""The streaming pass: images through the model once, every mined layer's top-k updated per batch."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..features.extractor import FeatureExtractor
from ..models import LoadedModel
from .datasets import ImageList, Transform, make_loader
from .topk import MiningState

__all__ = ["mine_indices"]


def mine_indices(model: LoadedModel, images: ImageList, transform: Transform, state: MiningState,
                 indices: Sequence[int], batch_size: int = 32, workers: int = 0,
                 checkpoint: Callable[[MiningState], None] | None = None, checkpoint_every: int = 20,
                 quiet: bool = False, desc: str = "mine",
                 eligible: Mapping[str, np.ndarray | None] | None = None) -> MiningState:
    """Feed images `indices` (ascending) from ``state.done`` on through the model, updating `state`.

    One :class:`FeatureExtractor` pass per batch, stopping after the deepest mined layer; every
    layer is read channels-first (``[N, C, H, W]``: channels-last maps permuted, token grids
    reshaped without their class token), whatever its layout; `eligible` holds each layer's mask
    of eligible positions over that grid (:mod:`.positions`; missing or None = all). Calls
    ``checkpoint(state)`` every `checkpoint_every` batches, and on Ctrl-C before re-raising.
    """
    todo = list(indices)[state.done:]
    if not todo:
        return state
    loader = make_loader(images, transform, todo, batch_size, workers)
    device = model.device
    names = list(state.layers)
    eligible = eligible or {}
    masks = {name: None if eligible.get(name) is None else torch.as_tensor(np.asarray(eligible[name], bool))
             for name in names}
    bar = tqdm(total=len(indices), initial=state.done, desc=desc, unit="img", disable=quiet, leave=False)
    batches = 0
    try:
        with FeatureExtractor(model, names, channels_first=True) as fx, torch.no_grad():
            for index, pixels, ok in loader:
                x = model.preprocessing.normalize(pixels.to(device).float().div_(255))
                feats = fx(x)
                for name in names:
                    state.layers[name].update(feats[name], index, ok, masks[name])
                state.done += len(index)
                state.seen += int(ok.sum())
                state.skipped += [int(i) for i in index[~ok]]
                batches += 1
                bar.update(len(index))
                if checkpoint is not None and batches % checkpoint_every == 0:
                    checkpoint(state)
    except KeyboardInterrupt:
        if checkpoint is not None:
            checkpoint(state)
        raise
    finally:
        bar.close()
    return state
