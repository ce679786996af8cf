"""A map over its image: a perceptual colour map (inferno, from plotly's colour scale), blended over
the photo, with a colour bar that gives the map's values."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..images import to_pil, to_tensor

__all__ = ["LEGEND_WIDTH", "colorize", "inferno", "overlay"]

#: Pixels the colour bar and its labels add to the right of the picture.
LEGEND_WIDTH = 56


@lru_cache(maxsize=1)
def inferno() -> torch.Tensor:
    """The inferno colour map as a 256-entry LUT ``[256, 3]`` in 0–1 (plotly's stops, interpolated
    linearly in sRGB)."""
    from plotly.colors import hex_to_rgb
    from plotly.colors import sequential

    stops = np.array([hex_to_rgb(c) for c in sequential.Inferno], dtype=np.float64) / 255
    where = np.linspace(0, 1, len(stops))
    grid = np.linspace(0, 1, 256)
    lut = np.stack([np.interp(grid, where, stops[:, c]) for c in range(3)], 1)
    return torch.from_numpy(lut).float()


def colorize(values: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` in 0–1 → RGB ``[3, H, W]`` through :func:`inferno`."""
    index = (values.clamp(0, 1) * 255).round().long()
    return inferno()[index].permute(2, 0, 1)


def overlay(image: torch.Tensor, upsampled: torch.Tensor, opacity: float = 0.5) -> torch.Tensor:
    """`image` ``[3, H, W]`` (0–1) under the map `upsampled` ``[H, W]`` (scaled by its maximum, so 0
    is dark and the peak bright), with a colour bar on the right labelled 0 and the map's maximum.
    Returns ``[3, H, H + LEGEND_WIDTH]``-wide RGB in 0–1."""
    top = float(upsampled.max())
    scaled = upsampled / top if top > 0 else torch.zeros_like(upsampled)
    blend = (1 - opacity) * image.cpu().float() + opacity * colorize(scaled.cpu().float())
    h, w = blend.shape[1:]
    canvas = Image.new("RGB", (w + LEGEND_WIDTH, h), "white")
    canvas.paste(to_pil(blend), (0, 0))
    bar_top, bar_bottom = 12, max(14, h - 12)
    ramp = torch.linspace(1, 0, bar_bottom - bar_top)[:, None].expand(-1, 12)
    canvas.paste(to_pil(colorize(ramp)), (w + 6, bar_top))
    draw = ImageDraw.Draw(canvas)
    draw.text((w + 20, bar_top - 4), f"{top:.3g}", fill="black")
    draw.text((w + 20, bar_bottom - 8), "0", fill="black")
    return to_tensor(canvas)[0]
