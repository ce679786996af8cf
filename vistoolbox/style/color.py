"""Colour control for style transfer (Gatys et al. 2017, "Controlling Perceptual Factors").

* luminance-only transfer: work on the Y channel of YIQ, put the content's I and Q back after;
* colour histogram matching: give the style image the content's colour mean and covariance
  (a linear map ``x' = A(x − μ_s) + μ_c`` with ``A = Σ_c^½ Σ_s^-½``) before transferring.

Images are 0–1 RGB tensors ``[N, 3, H, W]``.
"""
from __future__ import annotations

import torch

__all__ = ["luminance", "match_color", "match_luminance", "recombine_luminance", "rgb_to_yiq", "RGB_TO_YIQ",
           "yiq_to_rgb"]

#: RGB → YIQ (NTSC 1953). Rows: Y, I, Q.
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                           [0.595716, -0.274453, -0.321263],
                           [0.211456, -0.522591, 0.311135]])


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """0–1 RGB → YIQ (Y in 0–1, I and Q signed)."""
    return _apply(RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """YIQ → RGB (not clamped)."""
    return _apply(torch.linalg.inv(RGB_TO_YIQ.double()).float(), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y channel repeated into three grey RGB channels ``[N, 3, H, W]``."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_grey: torch.Tensor, content_grey: torch.Tensor) -> torch.Tensor:
    """Shift and scale a grey style image so its luminance mean/std are the content's."""
    s_mean, s_std = style_grey.mean(), style_grey.std().clamp_min(1e-6)
    return (style_grey - s_mean) * (content_grey.std() / s_std) + content_grey.mean()


def recombine_luminance(grey_result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """RGB image with the luminance of `grey_result` and the chroma (I, Q) of `content`."""
    y = rgb_to_yiq(grey_result)[:, :1]
    iq = rgb_to_yiq(content)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], 1))


def _sym_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(1e-8).pow(power)) @ vectors.T


def match_color(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """`style` recoloured so its RGB mean and covariance equal `content`'s (then clamped to 0–1)."""
    s = style.double().permute(1, 0, 2, 3).reshape(3, -1)
    c = content.double().permute(1, 0, 2, 3).reshape(3, -1)
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    cov_s, cov_c = torch.cov(s, correction=0), torch.cov(c, correction=0)  # one pixel, one colour: 0
    eye = torch.eye(3, dtype=torch.float64) * 1e-6
    a = _sym_power(cov_c + eye, 0.5) @ _sym_power(cov_s + eye, -0.5)
    out = (a @ (s - mu_s) + mu_c).reshape(3, style.shape[0], *style.shape[2:]).permute(1, 0, 2, 3)
    return out.clamp(0, 1).to(style.dtype)
