"""The feed-forward generator of Johnson et al. (2016) / Ulyanov et al. (2016).

Layout (``width`` = w, default 32 as in Johnson et al.)::

    c9s1-w  d2w  d4w  R4w × n_res  u2w  uw  c9s1-3

``cKsS-C`` is a reflection-padded K×K convolution with stride S and C filters followed by instance
normalisation and ReLU; ``dC`` a stride-2 3×3 one; ``RC`` a residual block of two 3×3 convolutions;
``uC`` nearest-neighbour ×2 upsampling followed by a 3×3 convolution (instead of a transposed
convolution, which leaves checkerboard artefacts). The last layer has no normalisation and a
sigmoid maps it to RGB in 0–1.

``input_skip`` (off by default, not in the papers) adds the input's logits to 0.1 × the last
layer's output and zero-initialises that layer, so the generator starts as the identity and learns the
change the style asks for: recognisable results after a few hundred CPU steps instead of the
tens of thousands of GPU steps the papers train for.

In ``image`` mode the input is a 0–1 RGB image; in ``texture`` mode it is uniform noise with
``noise_channels`` channels (Texture Networks' texture mode, here with the same residual body).
Any input size works: the input is reflection-padded to a multiple of 4 (at least 16) and the
output cropped back, so the output always has the input's height and width.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VisUsageError
from ..limits import whole

__all__ = ["ConvBlock", "GeneratorConfig", "MAX_NOISE_CHANNELS", "MAX_RES_BLOCKS", "MAX_WIDTH", "MIN_SIZE", "MODES", "ResidualBlock", "SKIP_EPS", "SKIP_SCALE",
           "StyleGenerator", "texture_noise"]

MODES = ("image", "texture")
#: Upper bounds of the architecture (checked before building; a stylizer file is untrusted input).
MAX_WIDTH, MAX_RES_BLOCKS, MAX_NOISE_CHANNELS = 256, 64, 256
#: inputs are padded to at least this size (and a multiple of 4) so every layer has room to pad
MIN_SIZE = 16
#: input_skip: the input enters the output logits as logit(clamp(x, ε, 1 − ε))
SKIP_EPS = 1e-3
#: … plus SKIP_SCALE × the last layer's output: Adam moves every weight of the zero-initialised
#: 9×9 layer by about lr at once, and this keeps those first coherent steps small in the image
SKIP_SCALE = 0.1


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a :class:`StyleGenerator`; stored in every stylizer file."""

    mode: str = "image"
    width: int = 32
    res_blocks: int = 5
    noise_channels: int = 8
    input_skip: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise VisUsageError(f"unknown stylizer `mode` {self.mode!r}; valid: {', '.join(MODES)}")
        if self.input_skip and self.mode != "image":
            raise VisUsageError("`input_skip` is for image mode (a texture generator's input is noise)")
        whole(self.width, "width", 1, MAX_WIDTH)
        whole(self.res_blocks, "res_blocks", 0, MAX_RES_BLOCKS)
        whole(self.noise_channels, "noise_channels", 1, MAX_NOISE_CHANNELS)

    @property
    def in_channels(self) -> int:
        return 3 if self.mode == "image" else self.noise_channels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorConfig":
        return cls(**{k: data[k] for k in ("mode", "width", "res_blocks", "noise_channels")},
                   input_skip=bool(data.get("input_skip", False)))


class ConvBlock(nn.Sequential):
    """Reflection pad → conv → (instance norm → ReLU); with ``upsample`` a nearest ×2 first."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False,
                 norm: bool = True, relu: bool = True):
        layers: list[nn.Module] = []
        if upsample:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))) with 3×3 reflection-padded convolutions."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(channels, channels, 3),
                                  ConvBlock(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StyleGenerator(nn.Module):
    """Image (or noise) → stylised RGB image in 0–1 of the same height and width.

    >>> g = StyleGenerator(GeneratorConfig(width=8, res_blocks=1))
    >>> g(torch.rand(2, 3, 37, 50)).shape
    torch.Size([2, 3, 37, 50])
    """

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.encoder = nn.Sequential(ConvBlock(config.in_channels, w, 9), ConvBlock(w, 2 * w, 3, stride=2),
                                     ConvBlock(2 * w, 4 * w, 3, stride=2))
        self.residual = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(config.res_blocks)])
        self.decoder = nn.Sequential(ConvBlock(4 * w, 2 * w, 3, upsample=True),
                                     ConvBlock(2 * w, w, 3, upsample=True),
                                     ConvBlock(w, 3, 9, norm=False, relu=False))
        if config.input_skip:  # start as the identity: the last conv adds a learnt change of logits
            last = self.decoder[-1][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise VisUsageError(f"the generator takes [N, {self.config.in_channels}, H, W] input, "
                                f"got {list(x.shape)}")
        h, w = x.shape[-2:]
        pad_h, pad_w = max(MIN_SIZE, h + (-h) % 4) - h, max(MIN_SIZE, w + (-w) % 4) - w
        if pad_h or pad_w:  # reflection needs pad < size: replicate the few pixels of tiny inputs
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self.decoder(self.residual(self.encoder(x)))[..., :h, :w]
        if self.config.input_skip:
            y = SKIP_SCALE * y + torch.logit(x[..., :h, :w].clamp(SKIP_EPS, 1 - SKIP_EPS))
        return torch.sigmoid(y)


def texture_noise(batch: int, height: int, width: int, channels: int,
                  generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform 0–1 noise ``[batch, channels, height, width]``, the texture generator's input."""
    return torch.rand(batch, channels, height, width, generator=generator).to(device)
