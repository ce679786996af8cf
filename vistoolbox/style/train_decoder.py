"""Training decoders for universal style transfer on the shared feature extractor.

* ``kind="wct"`` (no style images; Li et al. 2017): each layer's decoder reconstructs the image from
  its features, loss ``mean((D(φ(x)) − x)²) + feature_weight · mean((φ(D(φ(x))) − φ(x))²) / mean(φ(x)²)``
  (pixels in 0–1; the feature term is a relative error, as in :class:`~vistoolbox.style.losses.StyleLoss`).
* ``kind="adain"`` (with style images; Huang & Belongie 2017): one decoder at one layer, trained on
  ``t = adain(φ(c), φ(s))``: ``mean((φ(D(t)) − t)²) / mean(t²) + style_weight · Σ_l w_l L_μσ(φ_l(D(t)),
  φ_l(s)) / mean(target²)`` with the mean/std loss of :class:`~vistoolbox.style.stats.MeanStd`.

Batches are drawn from the seed and the step alone (:func:`~vistoolbox.style.train_stylizer.training_batch`;
style images with the seed + 1), and the loop, checkpoints and resume checks are
:mod:`vistoolbox.style.training`'s, as for the stylizer: a run killed after a checkpoint and resumed
writes the same bytes as an uninterrupted one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import VisUsageError
from ..limits import batch_pixels, number, side, whole
from ..models import LoadedModel, as_model
from .decoder import Decoder, DecoderConfig, DecoderSet, Encoder, encoder_identity, load_decoder, save_decoder
from .losses import layer_weights
from .stats import MeanStd, mean_std
from .train_stylizer import dataset_record, list_images, training_batch
from .training import check_out, check_resume, run_steps
from .universal import adain

__all__ = ["ADAIN_STYLE_LAYERS", "DEFAULT_LAYERS", "train_decoder"]

#: the decoder layer of AdaIN and of a one-level WCT
DEFAULT_LAYERS = ("relu4_1",)
#: AdaIN's style loss layers (Huang & Belongie 2017), VGG aliases
ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
RESUME_KEYS = ("size", "batch_size", "lr", "seed", "weights")


def _fingerprint(record: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: record.get(k) for k in ("count", "fingerprint")} if record else None


def train_decoder(model: LoadedModel | str, content: str | Path, style: str | Path | None = None, *,
                  layers: Sequence[str] = DEFAULT_LAYERS, out: str | Path | None = None, size: int = 256,
                  steps: int = 2000, batch_size: int = 4, lr: float = 1e-3, width: int = 64, depth: int = 1,
                  feature_weight: float = 1.0, style_weight: float = 1.0,
                  style_layers: Sequence[str] | Mapping[str, float] | None = None, seed: int = 0,
                  checkpoint_every: int = 100, resume: bool = False, quiet: bool = False) -> DecoderSet:
    """Train decoders inverting `model` at `layers` on the images under `content` (and, for AdaIN, the
    style images under `style`); returns them and, with `out`, keeps them saved there.

    Args:
        model: the encoder, a :class:`LoadedModel` or a name (``"vgg16"``: the offline ``hed`` VGG16).
        style: a folder of style images: trains an AdaIN decoder (one layer); without it a WCT
            reconstruction decoder per layer (``relu1_1,…,relu5_1`` for the cascade).
        size, batch_size: square training crops (seeded crops and flips of the shorter side scaled to `size`).
        width, depth: the decoders' narrowest channel count and convolutions per upsampling.
        feature_weight: WCT's feature reconstruction weight; style_weight, style_layers: AdaIN's style
            loss (default relu1_1, relu2_1, relu3_1, relu4_1).
        checkpoint_every, resume: as :func:`~vistoolbox.train_stylizer`.
    """
    kind = "wct" if style is None else "adain"
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise VisUsageError("give at least one decoder layer in `layers`, e.g. relu4_1")
    if kind == "adain" and len(layers) != 1:
        raise VisUsageError(f"an AdaIN decoder inverts one layer, got `layers` {','.join(layers)}; "
                            "several layers are the WCT cascade (no `style`)")
    size = side(size, "size")
    steps, checkpoint_every = whole(steps, "steps"), whole(checkpoint_every, "checkpoint_every")
    batch_pixels(whole(batch_size, "batch_size"), size, size, "batch_size")
    number(lr, "lr", positive=True)
    number(feature_weight, "feature_weight", 0)
    number(style_weight, "style_weight", 0)
    whole(seed, "seed", 0)
    out = Path(out) if out is not None else None
    check_out(out, resume, "decoder")
    content_files = list_images(content)
    style_files = list_images(style) if style is not None else []
    model = as_model(model)
    weights_by_layer = layer_weights(style_layers or list(ADAIN_STYLE_LAYERS)) if kind == "adain" else {}
    encoder = Encoder(model, [*layers, *weights_by_layer])
    per_layer = {name: Encoder(model, [name]) for name in layers} if kind == "wct" else {}
    with torch.no_grad():  # the decoders' input scale: 1 / RMS of the first batch's features
        first = encoder(training_batch(content_files, 0, batch_size, size, seed))
    configs = {name: DecoderConfig(*encoder.shape(name), width=width, depth=depth,
                                   scale=float(first[name].pow(2).mean().clamp_min(1e-12).rsqrt()))
               for name in layers}
    weights = ({"pixel": 1.0, "feature": feature_weight} if kind == "wct" else
               {"content": 1.0, "style": style_weight, "style_layers": weights_by_layer})
    training = {"size": size, "batch_size": batch_size, "lr": lr, "seed": seed, "weights": weights,
                "content": dataset_record(content, content_files),
                "style": dataset_record(style, style_files) if style is not None else None}
    identity = encoder_identity(model, layers)
    device = model.device

    if resume:
        state = load_decoder(out, device=device)  # type: ignore[arg-type]
        check_resume([("kind", state.kind, kind), ("encoder", state.encoder, identity),
                      ("decoder architecture", {k: d.config.to_dict() for k, d in state.decoders.items()},
                       {k: c.to_dict() for k, c in configs.items()}),
                      ("content images", _fingerprint(state.training.get("content")),
                       _fingerprint(training["content"])),
                      ("style images", _fingerprint(state.training.get("style")), _fingerprint(training["style"]))]
                     + [(key, state.training.get(key), training[key]) for key in RESUME_KEYS])
    else:
        torch.manual_seed(seed)
        state = DecoderSet(decoders={k: Decoder(c).to(device) for k, c in configs.items()}, kind=kind,
                           encoder=identity, training={**training, "steps": 0})
    optimizer = torch.optim.Adam(state.parameters(), lr=lr)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)

    def checkpoint(done: int) -> None:
        state.training["steps"] = done
        state.optimizer = optimizer.state_dict()
        if out is not None:
            save_decoder(state, out)

    statistic = MeanStd()

    def wct_step(step: int) -> dict[str, float]:
        images = training_batch(content_files, step, batch_size, size, seed).to(device)
        with torch.no_grad():
            feats = encoder(images)
        pixel = feature = images.new_zeros(())
        for name, decoder in state.decoders.items():
            target = feats[name]
            rebuilt = decoder(target, images.shape[-2:])
            pixel = pixel + (rebuilt - images).pow(2).mean()
            again = per_layer[name](rebuilt)[name]
            feature = feature + (again - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)
        return {"total": pixel + feature_weight * feature, "pixel": pixel, "feature": feature}

    def adain_step(step: int) -> dict[str, float]:
        (name, decoder), = state.decoders.items()
        images = training_batch(content_files, step, batch_size, size, seed).to(device)
        styles = training_batch(style_files, step, batch_size, size, seed + 1).to(device)
        with torch.no_grad():
            target = adain(encoder(images)[name], (style_feats := encoder(styles))[name])
            style_targets = {k: mean_std(style_feats[k]) for k in weights_by_layer}
        feats = encoder(decoder(target, images.shape[-2:]))
        content_term = (feats[name] - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)
        style_term = images.new_zeros(())
        for k, w in weights_by_layer.items():
            style_term = style_term + w * statistic.loss(feats[k], style_targets[k]) / \
                style_targets[k].pow(2).mean().clamp_min(1e-12)
        return {"total": content_term + style_weight * style_term, "content": content_term, "style": style_term}

    one = wct_step if kind == "wct" else adain_step

    def step_fn(step: int) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        terms = one(step)
        terms["total"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    for decoder in state.decoders.values():
        decoder.train()
    try:
        run_steps(step_fn, start=state.steps, steps=steps, checkpoint_every=checkpoint_every, checkpoint=checkpoint,
                  history=state.history, desc="train-decoder", quiet=quiet)
    finally:
        encoder.close()
        for enc in per_layer.values():
            enc.close()
    for decoder in state.decoders.values():
        decoder.eval()
    return state
