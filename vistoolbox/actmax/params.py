"""Image parameterizations: what the optimizer changes, and how it becomes a 0–1 RGB batch.

* :class:`FourierImage` — Lucid-style: a spectrum scaled by 1/f, inverse FFT, a fixed 3×3 colour
  decorrelation, then a sigmoid into 0–1 (Olah et al. 2017, "Feature Visualization").
* :class:`PixelImage` — Yosinski-style: raw pixels in "0–255 minus the model's mean" space, so the
  paper's step sizes (lr 100, start N(0, 10)) mean the same for every model.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models import Preprocessing

__all__ = ["COLOR_CORRELATION_SQRT", "FourierImage", "PixelImage"]

#: Square root of the ImageNet RGB colour covariance (from its SVD), as published with Lucid.
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])


def _generator_normal(shape: tuple[int, ...], generators: list[torch.Generator], std: float) -> torch.Tensor:
    """One seeded normal draw per batch element (element i uses ``generators[i]``)."""
    return torch.stack([torch.randn(shape, generator=g) * std for g in generators])


class FourierImage(nn.Module):
    """A batch of images parameterised in decorrelated Fourier space, output 0–1 RGB ``[N, 3, H, W]``.

    Args:
        generators: one seeded generator per image (so a unit's start does not depend on its batch).
        size: (height, width).
        sd: standard deviation of the initial spectrum.
        decay_power: spectrum scale ``1 / f**decay_power`` (f clipped at 1/max(H, W)).
        decorrelate: apply the colour decorrelation matrix (else the channels are independent).
    """

    def __init__(self, generators: list[torch.Generator], size: tuple[int, int], sd: float = 0.01,
                 decay_power: float = 1.0, decorrelate: bool = True):
        super().__init__()
        h, w = size
        self.size = (h, w)
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freqs = torch.sqrt(fx * fx + fy * fy)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power
        self.register_buffer("scale", scale[None, None, :, :, None], persistent=False)
        self.spectrum = nn.Parameter(_generator_normal((3, h, w // 2 + 1, 2), generators, sd))
        matrix = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()
        self.register_buffer("color", matrix if decorrelate else torch.eye(3), persistent=False)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex((self.spectrum * self.scale).contiguous())
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4.0  # unitary FFT; Lucid's /4
        image = torch.einsum("nchw,dc->ndhw", image, self.color)
        return torch.sigmoid(image)


class PixelImage(nn.Module):
    """A batch of raw-pixel images in "0–255 minus mean" space; ``forward`` gives 0–1 RGB.

    Args:
        generators: one seeded generator per image.
        size: (height, width).
        preprocessing: the model's, for the mean that is subtracted.
        init_std: standard deviation of the N(0, init_std) start (Yosinski et al.: 10).
        init: an optional 0–1 start image ``[N, 3, H, W]`` instead of noise.
    """

    def __init__(self, generators: list[torch.Generator], size: tuple[int, int], preprocessing: Preprocessing,
                 init_std: float = 10.0, init: torch.Tensor | None = None):
        super().__init__()
        mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        start = (init * 255.0 - mean) if init is not None else _generator_normal((3, *size), generators, init_std)
        self.pixels = nn.Parameter(start.clone())

    def forward(self) -> torch.Tensor:
        return (self.pixels + self.mean) / 255.0

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clip the pixels to the valid 0–255 range."""
        self.pixels.copy_(torch.maximum(torch.minimum(self.pixels, 255.0 - self.mean), -self.mean))
