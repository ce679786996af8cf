"""Decoders that invert an encoder at one layer (universal style transfer), the encoder they invert,
and their self-describing file.

:class:`Encoder` gives channels-first features of 0–1 images at named layers of any model (the
shared feature extractor, stopping at the deepest layer asked for). :class:`Decoder` maps a layer's
features back to an RGB image: per ×2 of the layer's stride, a 3×3 reflection-padded convolution
with ReLU (channels halved, never below ``width``; ``depth − 1`` more at that width) then nearest
×2 upsampling, and a last 3×3 convolution to RGB — the mirrored-VGG decoder of Li et al. (2017) and
Huang & Belongie (2017), sized from the layer itself. A decoder's output is resized to the input
image's size when the stride is not a power of 2.

The file (``torch.save``, read with ``weights_only=True``)::

    format "vistoolbox.decoder"  version 1
    kind       "wct" (reconstruction) | "adain" (content + style loss)
    encoder    model.describe() + {"layers": [...], "paths": [...]} — checked at use
    decoders   {layer: {"config": DecoderConfig dict, "state_dict": ...}}
    training   {"steps", "size", "batch_size", "lr", "seed", "content", "style", "weights"}
    history    {"step": [...], "total": [...], "pixel": [...], "feature": [...], "content": [...], "style": [...]}
    optimizer  Adam state (for resuming) or None
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VisUsageError
from ..features.extractor import FeatureExtractor
from ..limits import number, whole
from ..models import LoadedModel
from ..weights import save_atomic, sha256_file
from .training import canonical, read_checkpoint

__all__ = ["Decoder", "DecoderConfig", "DecoderSet", "Encoder", "FORMAT", "HISTORY_KEYS", "KINDS", "VERSION",
           "check_encoder", "encoder_identity", "load_decoder", "save_decoder", "weights_sha256"]

FORMAT = "vistoolbox.decoder"
VERSION = 1
KINDS = ("wct", "adain")
HISTORY_KEYS = ("step", "total", "pixel", "feature", "content", "style")
#: the side the encoder is probed at to learn a layer's channels and stride
PROBE_SIDE = 128


class Encoder:
    """Channels-first features ``{layer: [N, C, h, w]}`` of 0–1 RGB images at `layers` of `model`."""

    def __init__(self, model: LoadedModel, layers: Sequence[str]):
        for name in layers:
            model.resolve(name)  # unknown names → usage error listing the valid ones
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        self.extractor = FeatureExtractor(model, self.layers, channels_first=True)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extractor(self.model.preprocessing.normalize(image.to(self.model.device)))

    def shape(self, layer: str) -> tuple[int, int]:
        """``(channels, upsamplings)`` of `layer`: its channel count and log2 of its stride (rounded)."""
        with torch.no_grad():
            feats = self(torch.full((1, 3, PROBE_SIDE, PROBE_SIDE), 0.5))[layer]
        if feats.dim() != 4:
            raise VisUsageError(f"layer {layer!r} gives {list(feats.shape)} features; a decoder needs a "
                                "spatial layer [N, C, H, W]")
        return int(feats.shape[1]), max(0, round(math.log2(PROBE_SIDE / feats.shape[-1])))

    def close(self) -> None:
        self.extractor.close()


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of a :class:`Decoder` (bounded: a decoder file is untrusted input)."""

    in_channels: int
    ups: int
    width: int = 64
    depth: int = 1
    #: features are multiplied by this first (1 / their RMS on the first training batch), so a
    #: decoder starts at unit scale whatever the encoder's feature scale (``hed`` VGG16: ~10²)
    scale: float = 1.0

    def __post_init__(self) -> None:
        number(self.scale, "scale", positive=True)
        whole(self.in_channels, "in_channels", 1, 8192)
        whole(self.ups, "ups", 0, 8)
        whole(self.width, "width", 1, 1024)
        whole(self.depth, "depth", 1, 8)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DecoderConfig":
        return cls(**{k: int(data[k]) for k in ("in_channels", "ups", "width", "depth")},
                   scale=float(data.get("scale", 1.0)))


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), *([nn.ReLU()] if relu else [])]


class Decoder(nn.Module):
    """Features ``[N, C, h, w]`` → RGB ``[N, 3, H, W]`` (not clamped; see the module doc)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c = config.in_channels
        for _ in range(config.ups):
            out = max(config.width, c // 2)
            layers += _conv(c, out)
            for _ in range(config.depth - 1):
                layers += _conv(out, out)
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            c = out
        self.body = nn.Sequential(*layers, *_conv(c, 3, relu=False))

    def forward(self, features: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        if features.dim() != 4 or features.shape[1] != self.config.in_channels:
            raise VisUsageError(f"the decoder takes [N, {self.config.in_channels}, h, w] features, "
                                f"got {list(features.shape)}")
        x = features
        if min(x.shape[-2:]) < 2:  # reflection padding needs 2 positions
            x = F.interpolate(x, size=(max(2, x.shape[-2]), max(2, x.shape[-1])), mode="nearest")
        y = self.body(x.float() * self.config.scale)
        if size is not None and tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
        return y


def weights_sha256(model: LoadedModel) -> str:
    """The weights file's sha256, or (random or in-memory weights) a sha256 of the module's state."""
    if model.weights_sha256:
        return model.weights_sha256
    digest = hashlib.sha256()
    for name, tensor in model.module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encoder_identity(model: LoadedModel, layers: Sequence[str]) -> dict[str, Any]:
    """What a decoder file records of its encoder (compared at use by :func:`check_encoder`)."""
    return {**model.describe(), "weights_sha256": weights_sha256(model), "layers": list(layers),
            "paths": [model.resolve(n) for n in layers]}


@dataclass
class DecoderSet:
    """Decoders for one or more layers of one encoder, plus how they were trained (see the module doc)."""

    decoders: dict[str, Decoder]
    kind: str = "wct"
    encoder: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    optimizer: dict[str, Any] | None = None
    sha256: str | None = None

    @property
    def layers(self) -> list[str]:
        return list(self.decoders)

    @property
    def steps(self) -> int:
        return int(self.training.get("steps", 0))

    def parameters(self) -> list[nn.Parameter]:
        return [p for d in self.decoders.values() for p in d.parameters()]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "encoder": dict(self.encoder),
                "decoders": {k: {"config": d.config.to_dict(),
                                 "state_dict": {n: t.detach().cpu().clone() for n, t in d.state_dict().items()}}
                             for k, d in self.decoders.items()},
                "training": dict(self.training), "history": {k: list(v) for k, v in self.history.items()},
                "optimizer": self.optimizer}


def save_decoder(decoders: DecoderSet, path: str | Path) -> Path:
    """Write the decoder file atomically (same content → same bytes)."""
    save_atomic(canonical(decoders.to_dict()), Path(path))
    return Path(path)


def load_decoder(path: str | Path, device: str | torch.device = "cpu") -> DecoderSet:
    """Read a decoder file with ``weights_only=True``; missing, foreign or broken files are usage errors."""
    data = read_checkpoint(path, FORMAT, VERSION, "decoder", "vis train-decoder")
    try:
        if data["kind"] not in KINDS:
            raise ValueError(f"unknown kind {data['kind']!r}")
        decoders = {}
        for layer, entry in dict(data["decoders"]).items():
            decoder = Decoder(DecoderConfig.from_dict(entry["config"]))
            decoder.load_state_dict(entry["state_dict"])
            decoders[str(layer)] = decoder.eval().to(device)
        if not decoders:
            raise ValueError("no decoders in the file")
        return DecoderSet(decoders=decoders, kind=data["kind"], encoder=dict(data["encoder"]),
                          training=dict(data["training"]),
                          history={k: list(data["history"].get(k, [])) for k in HISTORY_KEYS},
                          optimizer=data.get("optimizer"), sha256=sha256_file(path))
    except VisUsageError as exc:
        raise VisUsageError(f"{str(path)!r} is not a usable decoder file: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise VisUsageError(f"{str(path)!r} is not a usable decoder file ({type(exc).__name__}: {reason})") from None


def check_encoder(decoders: DecoderSet, model: LoadedModel, layers: Sequence[str] | None = None) -> None:
    """The decoders must have been trained on `model` (name and weights sha256) and have every one of
    `layers`; otherwise a one-line usage error saying what differs."""
    rec = decoders.encoder
    now = {**model.describe(), "weights_sha256": weights_sha256(model)}
    for key, what in (("model", "model"), ("weights_sha256", "weights")):
        if rec.get(key) != now.get(key):
            old = rec.get("weights") if key == "weights_sha256" else rec.get(key)
            new = now.get("weights") if key == "weights_sha256" else now.get(key)
            raise VisUsageError(f"the decoder was trained on another encoder: {what} {old!r} "
                                f"(sha256 {str(rec.get('weights_sha256'))[:12]}), this run uses {new!r} "
                                f"(sha256 {str(now.get('weights_sha256'))[:12]}); pass its `model`/`weights` "
                                "or train a decoder for this one (vis train-decoder)")
    missing = [name for name in layers or () if name not in decoders.decoders]
    if missing:
        raise VisUsageError(f"the decoder has no layer {missing[0]!r}; it inverts {', '.join(decoders.layers)}")
    paths = [model.resolve(name) for name in decoders.layers]
    if rec.get("paths") and list(rec["paths"]) != paths:
        raise VisUsageError(f"the decoder's layers {decoders.layers} are modules {rec['paths']} of its encoder, "
                            f"but {paths} here")
