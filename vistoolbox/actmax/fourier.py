"""Spectra in ``rfft2`` layout (``[..., H, W // 2 + 1]``, complex) and the colour latent space that
the Fourier and phase parameterizations share.

* :func:`frequency_scale` — Lucid's ``1 / f**decay_power`` weighting of the frequency grid.
* :func:`carry_spectrum` — a spectrum moved onto a larger grid so that the inverse transform at the
  new size is the band-limited (sinc) upsampling of the old image: coarse-to-fine optimisation
  carries a Fourier parameterization up this way.
* :func:`tile` — the other way up: the canvas grows and the content repeats at its pixel scale.
* :func:`hermitian_phase` — a phase whose self-conjugate bins are antisymmetric, so that
  ``rfft2(irfft2(magnitude · e^{i·phase}))`` keeps the magnitude exactly.
* :func:`to_latent` / :func:`from_latent` — 0–1 RGB ↔ the decorrelated pre-sigmoid latent
  (``rgb = sigmoid(C · z)``, ``C`` the normalised square root of ImageNet's colour covariance).
"""
from __future__ import annotations

import math

import torch

__all__ = ["COLOR_CORRELATION_SQRT", "LATENT_EPS", "carry_spectrum", "color_matrix", "frequency_scale",
           "from_latent", "hermitian_phase", "random_phase", "tile", "to_latent"]

#: Square root of the ImageNet RGB colour covariance (from its SVD), as published with Lucid.
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])

#: 0–1 values are clipped to [eps, 1 − eps] before the logit (half an 8-bit level: 0 and 255 survive
#: the round trip through 8 bits).
LATENT_EPS = 1.0 / 512


def color_matrix(decorrelate: bool = True) -> torch.Tensor:
    """The 3×3 matrix ``C`` (columns scaled so the largest has norm 1), or the identity."""
    if not decorrelate:
        return torch.eye(3)
    return COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()


def from_latent(z: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """Latent ``[N, 3, H, W]`` → 0–1 RGB: ``sigmoid(C · z)`` per pixel."""
    return torch.sigmoid(torch.einsum("nchw,dc->ndhw", z, color))


def to_latent(images: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """0–1 RGB ``[N, 3, H, W]`` → the latent ``z`` with ``from_latent(z) == images`` (values clipped
    to [LATENT_EPS, 1 − LATENT_EPS] first)."""
    logit = torch.logit(images.clamp(LATENT_EPS, 1 - LATENT_EPS))
    return torch.einsum("nchw,dc->ndhw", logit, torch.linalg.inv(color.to(images.dtype)))


def frequency_scale(size: tuple[int, int], decay_power: float = 1.0) -> torch.Tensor:
    """``1 / max(f, 1/max(H, W))**decay_power`` on the ``[H, W // 2 + 1]`` grid (f in cycles/pixel)."""
    h, w = size
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power


def carry_spectrum(spectrum: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """Move a complex ``[..., h, w // 2 + 1]`` spectrum (unnormalised frequencies) onto the
    ``[..., H, W // 2 + 1]`` grid of a larger image, zeros at the new frequencies.

    With ``norm="ortho"`` transforms, ``irfft2(carry · sqrt(H·W / (h·w)), (H, W))`` sampled at every
    ``H/h``-th pixel equals ``irfft2(spectrum, (h, w))``: the band-limited upsampling. An even size's
    Nyquist row is split between ``±h/2`` and its Nyquist column halved (it becomes an ordinary
    column that the inverse transform counts twice).
    """
    (h, w), (big_h, big_w) = old, new
    if big_h < h or big_w < w:
        raise ValueError(f"cannot carry a {h}x{w} spectrum down to {big_h}x{big_w}")
    if (big_h, big_w) == (h, w):
        return spectrum.clone()
    x = spectrum.clone()
    cols = w // 2 + 1
    out = x.new_zeros((*x.shape[:-2], big_h, big_w // 2 + 1))
    if w % 2 == 0 and big_w != w:
        x[..., :, -1] = x[..., :, -1] / 2
    top, bottom = (h + 1) // 2, h // 2  # rows of non-negative / negative frequencies
    if h % 2 == 0 and big_h != h:  # Nyquist row −h/2 becomes the pair +h/2, −h/2
        x[..., h // 2, :] = x[..., h // 2, :] / 2
        out[..., h // 2, :cols] = x[..., h // 2, :]
    out[..., :top, :cols] += x[..., :top, :]
    out[..., big_h - bottom:, :cols] += x[..., h - bottom:, :]
    return out


def tile(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Repeat ``[..., h, w]`` periodically to cover `size` and crop to it (the canvas grows, the
    content keeps its pixel scale)."""
    h, w = x.shape[-2:]
    reps = (-(-size[0] // h), -(-size[1] // w))
    return x.repeat(*([1] * (x.dim() - 2)), *reps)[..., :size[0], :size[1]]


def hermitian_phase(phase: torch.Tensor, width: int) -> torch.Tensor:
    """Antisymmetrise a ``[..., H, W // 2 + 1]`` phase in the columns that hold their own conjugates
    (column 0, and the Nyquist column of an even width): ``φ(−k) = −φ(k)`` there, so DC and the
    Nyquist bins get phase 0 and the inverse real FFT keeps every magnitude."""
    out = phase.clone()
    cols = [0] + ([phase.shape[-1] - 1] if width % 2 == 0 else [])
    for c in cols:
        column = phase[..., :, c]
        mirrored = torch.roll(torch.flip(column, dims=[-1]), 1, dims=-1)  # entry k holds φ(−k)
        out[..., :, c] = (column - mirrored) / 2
    return out


def random_phase(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform phases in [−π, π), one seeded draw per batch element."""
    return torch.stack([(torch.rand(shape, generator=g) * 2 - 1) * math.pi for g in generators])
