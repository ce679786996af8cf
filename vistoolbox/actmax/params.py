"""Image parameterizations: what the optimizer changes, and how it becomes a 0–1 RGB batch.

* :class:`FourierImage` — Lucid-style: a spectrum scaled by 1/f, inverse FFT, a fixed 3×3 colour
  decorrelation, then a sigmoid into 0–1 (Olah et al. 2017, "Feature Visualization").
* :class:`PhaseImage` — MACO (Fel et al. 2023): only the Fourier **phase** is optimised; the
  magnitude is fixed to a natural-image spectrum (:mod:`.spectrum`), same colour latent as Fourier.
* :class:`PixelImage` — Yosinski-style: raw pixels in "0–255 minus the model's mean" space, so the
  paper's step sizes (lr 100, start N(0, 10)) mean the same for every model.

Each has ``grow(size, carry)`` for coarse-to-fine optimisation. ``carry="upsample"``: the same
image at a higher resolution (Fourier coefficients carried onto the larger grid — band-limited
upsampling —, phases likewise with fresh random phases at the new frequencies, pixels upsampled
bilinearly). ``carry="tile"``: a larger canvas with the content repeated at its pixel scale
(the latent or the pixels tiled, then re-expressed in the parameterization). And ``anchor()``/``distance(anchor)`` — its parameters
and the mean squared distance to them — for feature accentuation's penalty.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Preprocessing
from .fourier import (carry_spectrum, color_matrix, frequency_scale, from_latent, hermitian_phase, random_phase, tile,
                      to_latent)

__all__ = ["FourierImage", "ImageParam", "PhaseImage", "PixelImage"]


def _generator_normal(shape: tuple[int, ...], generators: list[torch.Generator], std: float) -> torch.Tensor:
    """One seeded normal draw per batch element (element i uses ``generators[i]``)."""
    return torch.stack([torch.randn(shape, generator=g) * std for g in generators])


class ImageParam(nn.Module):
    """Common interface: ``forward() -> [N, 3, H, W]`` in 0–1, ``size``, ``grow``, ``anchor``/``pull_``."""

    size: tuple[int, int]

    def values(self) -> torch.Tensor:
        """The optimised tensor itself."""
        raise NotImplementedError

    def grow(self, size: tuple[int, int], carry: str = "upsample") -> "ImageParam":
        raise NotImplementedError

    def anchor(self) -> torch.Tensor:
        """A detached copy of the parameters (the seed of feature accentuation)."""
        return self.values().detach().clone()

    @torch.no_grad()
    def pull_(self, anchor: torch.Tensor, keep: torch.Tensor) -> None:
        """``p ← anchor + keep_i · (p − anchor)`` per image (`keep` ``[N]`` in [0, 1])."""
        values = self.values()
        values.copy_(anchor + keep.view(-1, *[1] * (values.dim() - 1)) * (values - anchor))


class FourierImage(ImageParam):
    """A batch of images parameterised in decorrelated Fourier space, output 0–1 RGB ``[N, 3, H, W]``.

    Args:
        generators: one seeded generator per image (so a unit's start does not depend on its batch).
        size: (height, width).
        sd: standard deviation of the initial spectrum.
        decay_power: spectrum scale ``1 / f**decay_power`` (f clipped at 1/max(H, W)).
        decorrelate: apply the colour decorrelation matrix (else the channels are independent).
        spectrum: a start ``[N, 3, H, W // 2 + 1, 2]`` instead of the random one (no draw is made).
    """

    def __init__(self, generators: list[torch.Generator], size: tuple[int, int], sd: float = 0.01,
                 decay_power: float = 1.0, decorrelate: bool = True, spectrum: torch.Tensor | None = None):
        super().__init__()
        h, w = size
        self.size = (h, w)
        self.decay_power = decay_power
        self.decorrelate = decorrelate
        self.register_buffer("scale", frequency_scale(self.size, decay_power)[None, None, :, :, None],
                             persistent=False)
        start = spectrum if spectrum is not None else _generator_normal((3, h, w // 2 + 1, 2), generators, sd)
        self.spectrum = nn.Parameter(start.clone())
        self.register_buffer("color", color_matrix(decorrelate), persistent=False)

    def latent(self) -> torch.Tensor:
        spectrum = torch.view_as_complex((self.spectrum * self.scale).contiguous())
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4.0  # unitary FFT; Lucid's /4

    def forward(self) -> torch.Tensor:
        return from_latent(self.latent(), self.color)

    def values(self) -> torch.Tensor:
        return self.spectrum

    @classmethod
    def from_images(cls, images: torch.Tensor, decay_power: float = 1.0, decorrelate: bool = True) -> "FourierImage":
        """The parameterization whose image is `images` (0–1 ``[N, 3, H, W]``, values clipped to
        [1/512, 1 − 1/512]: exact after 8-bit rounding)."""
        size = (int(images.shape[-2]), int(images.shape[-1]))
        z = to_latent(images.detach().float().cpu(), color_matrix(decorrelate)) * 4.0
        spectrum = torch.view_as_real(torch.fft.rfft2(z, norm="ortho")) / frequency_scale(size, decay_power)[..., None]
        return cls([], size, decay_power=decay_power, decorrelate=decorrelate, spectrum=spectrum).to(images.device)

    def grow(self, size: tuple[int, int], carry: str = "upsample") -> "FourierImage":
        """The image on a larger canvas: upsampled (band-limited; new frequencies start at 0) or tiled.

        Upsampling: with the ortho FFT the inverse transform shrinks by ``r = sqrt(HW/hw)`` and the
        1/f scale of a given physical frequency grows by ``r**decay_power``, so the carried
        coefficients are multiplied by ``r**(1 − decay_power)`` (1 for Lucid's decay power 1).
        Tiling: the latent is repeated and transformed back (exact)."""
        with torch.no_grad():
            if carry == "tile":
                z = tile(self.latent().detach(), size) * 4.0
                scale = frequency_scale(size, self.decay_power).to(z.device)[..., None]
                spectrum = torch.view_as_real(torch.fft.rfft2(z, norm="ortho")) / scale
            else:
                ratio = (size[0] * size[1] / (self.size[0] * self.size[1])) ** 0.5
                old = torch.view_as_complex(self.spectrum.detach().contiguous())
                spectrum = torch.view_as_real(carry_spectrum(old, self.size, size) * ratio ** (1 - self.decay_power))
        return FourierImage([], size, decay_power=self.decay_power, decorrelate=self.decorrelate,
                            spectrum=spectrum.cpu()).to(self.spectrum.device)


class PhaseImage(ImageParam):
    """MACO's parameterization: a batch of images whose latent has a fixed Fourier magnitude
    (a natural-image spectrum) and an optimised phase; output 0–1 RGB ``[N, 3, H, W]``.

    The latent is ``irfft2(M · e^{iφ})`` (ortho), with the phase antisymmetrised where the real
    transform needs it (:func:`hermitian_phase`), so ``|rfft2(latent)| == |M|`` exactly; the DC
    bins carry ``M``'s sign (the dataset's mean colour). Then the colour matrix and a sigmoid, as
    for :class:`FourierImage`.

    Args:
        generators: one seeded generator per image (uniform random start phases).
        magnitude: ``[3, H, W // 2 + 1]`` from :func:`.spectrum.natural_spectrum`.
        size: (height, width) matching `magnitude`.
        phase: a start phase ``[N, 3, H, W // 2 + 1]`` instead of the random one.
    """

    def __init__(self, generators: list[torch.Generator], magnitude: torch.Tensor, size: tuple[int, int],
                 phase: torch.Tensor | None = None):
        super().__init__()
        h, w = size
        if tuple(magnitude.shape) != (3, h, w // 2 + 1):
            raise ValueError(f"magnitude {tuple(magnitude.shape)} does not fit a {h}x{w} image")
        self.size = (h, w)
        self.generators = generators
        self.register_buffer("magnitude", magnitude.abs(), persistent=False)
        self.register_buffer("sign", torch.where(magnitude < 0, -1.0, 1.0), persistent=False)
        self.register_buffer("color", color_matrix(True), persistent=False)
        start = phase if phase is not None else random_phase(generators, (3, h, w // 2 + 1))
        self.phase = nn.Parameter(start.clone())

    def latent(self) -> torch.Tensor:
        phase = hermitian_phase(self.phase, self.size[1])
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase) * self.sign
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")

    def forward(self) -> torch.Tensor:
        return from_latent(self.latent(), self.color)

    def values(self) -> torch.Tensor:
        return self.phase

    def grow(self, size: tuple[int, int], carry: str = "upsample", magnitude: torch.Tensor | None = None) -> "PhaseImage":
        """The image on a larger canvas under `magnitude` (the spectrum at that size). Upsampling:
        the old frequencies keep their phases, the new ones get random phases from the same
        generators. Tiling: the phases of the tiled latent."""
        if magnitude is None:
            raise ValueError("PhaseImage.grow needs the magnitude spectrum at the new size")
        h, w = self.size
        big_h, big_w = size
        with torch.no_grad():
            if carry == "tile":
                phase = torch.angle(torch.fft.rfft2(tile(self.latent().detach(), size), norm="ortho"))
            else:
                phase = random_phase(self.generators, (3, big_h, big_w // 2 + 1)).to(self.phase.device)
                top, bottom, cols = (h + 1) // 2, h // 2, w // 2 + 1
                phase[..., :top, :cols] = self.phase[..., :top, :]
                phase[..., big_h - bottom:, :cols] = self.phase[..., h - bottom:, :]
        return PhaseImage(self.generators, magnitude.to(self.phase.device), size, phase=phase).to(self.phase.device)


class PixelImage(ImageParam):
    """A batch of raw-pixel images in "0–255 minus mean" space; ``forward`` gives 0–1 RGB.

    Args:
        generators: one seeded generator per image.
        size: (height, width).
        preprocessing: the model's, for the mean that is subtracted.
        init_std: standard deviation of the N(0, init_std) start (Yosinski et al.: 10).
        init: an optional 0–1 start image ``[N, 3, H, W]`` instead of noise.
        pixels: an optional start in "0–255 minus mean" space (no draw is made).
    """

    def __init__(self, generators: list[torch.Generator], size: tuple[int, int], preprocessing: Preprocessing,
                 init_std: float = 10.0, init: torch.Tensor | None = None, pixels: torch.Tensor | None = None):
        super().__init__()
        self.preprocessing = preprocessing
        mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        if pixels is not None:
            start = pixels
        else:
            start = (init * 255.0 - mean) if init is not None else _generator_normal((3, *size), generators, init_std)
        self.pixels = nn.Parameter(start.clone())
        self.size = (int(start.shape[-2]), int(start.shape[-1]))

    def forward(self) -> torch.Tensor:
        return (self.pixels + self.mean) / 255.0

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clip the pixels to the valid 0–255 range."""
        self.pixels.copy_(torch.maximum(torch.minimum(self.pixels, 255.0 - self.mean), -self.mean))

    def values(self) -> torch.Tensor:
        return self.pixels

    def grow(self, size: tuple[int, int], carry: str = "upsample") -> "PixelImage":
        """The pixels (in "0–255 minus mean" space) bilinearly upsampled to `size`, or tiled."""
        with torch.no_grad():
            if carry == "tile":
                pixels = tile(self.pixels.detach(), tuple(size))
            else:
                pixels = F.interpolate(self.pixels.detach(), size=tuple(size), mode="bilinear", align_corners=False)
        return PixelImage([], tuple(size), self.preprocessing, pixels=pixels).to(self.pixels.device)
