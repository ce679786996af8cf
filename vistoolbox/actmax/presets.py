"""Settings for one optimisation and the named presets (``lucid``, ``distill``, ``yosinski1..4``,
``dream``). Every field can be overridden by name (``steps=64``, ``blur_radius=0.5``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import VisUsageError, unknown
from ..limits import MAX_PIXELS, batch_pixels, number, side, whole

__all__ = ["LUCID_ANGLES", "LUCID_SCALES", "PRESETS", "Settings", "settings_for"]

LUCID_SCALES = tuple(round(1 + (i - 5) / 50, 4) for i in range(11))
LUCID_ANGLES = tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5


@dataclass(frozen=True)
class Settings:
    """Every knob of an optimisation run.

    ``family`` picks the loop: ``lucid`` (Fourier/decorrelated/sigmoid image, transformation
    robustness, Adam) or ``pixel`` (raw pixels in 0–255-minus-mean space, gradient ascent with
    Yosinski's regularizers; also used by DeepDream with ``lr_policy="normalized"``).
    """

    family: str = "lucid"
    steps: int = 512
    lr: float = 0.05
    size: int | None = None  # None: the model's input size
    # lucid family
    decorrelate: bool = True
    fourier: bool = True
    sd: float = 0.01
    decay_power: float = 1.0
    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = LUCID_SCALES
    angles: tuple[float, ...] = LUCID_ANGLES
    jitter2: int = 4
    # pixel family (Yosinski et al. 2015, Table 1)
    lr_policy: str = "constant"  # constant | progress | normalized
    max_lr: float = 100.0
    desired_progress: float = 2.0
    init_std: float = 10.0
    decay: float = 0.0
    blur_radius: float = 0.0
    blur_every: int = 0
    norm_pct: float = 0.0
    contrib_pct: float = 0.0
    roll: int = 0  # pixel family: random circular shift of up to this many px per step

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def validate(self) -> "Settings":
        """Raise :class:`VisUsageError` for values that cannot work (NaN, infinity, negative, zero
        where a count or size is needed, sizes above :data:`~vistoolbox.limits.MAX_PIXELS`)."""
        if self.family not in ("lucid", "pixel"):
            raise VisUsageError(f"unknown family {self.family!r}; valid: lucid, pixel")
        whole(self.steps, "steps")
        number(self.lr, "lr", positive=True)
        if self.size is not None:
            side(self.size, "size")
        for name in ("norm_pct", "contrib_pct"):
            value = number(getattr(self, name), name, 0)
            if not value < 100:
                raise VisUsageError(f"`{name}` must be in [0, 100), got {value}")
        if not 0 <= number(self.decay, "decay") < 1:
            raise VisUsageError(f"`decay` must be in [0, 1), got {self.decay}")
        number(self.blur_radius, "blur_radius", 0, math.isqrt(MAX_PIXELS))  # wider than any image: meaningless
        for name in ("blur_every", "pad", "jitter", "jitter2", "roll"):
            whole(getattr(self, name), name, 0)
        for name in ("sd", "init_std", "decay_power", "max_lr", "desired_progress"):
            number(getattr(self, name), name, 0)
        for values, name in ((self.scales, "scales"), (self.angles, "angles")):
            for value in values:
                number(value, name, positive=name == "scales")
        if self.lr_policy not in ("constant", "progress", "normalized"):
            raise VisUsageError(f"unknown lr policy {self.lr_policy!r}; valid: constant, progress, normalized")
        return self

    def check_batch(self, size: tuple[int, int], count: int, name: str) -> None:
        """Refuse transforms that cut away the whole `size` image and batches of `count` images
        (padded, for the lucid family) above :data:`~vistoolbox.limits.MAX_BATCH_PIXELS`; `name`
        is the parameter that sets `count`."""
        pad = self.pad if self.family == "lucid" else 0
        height, width = size[0] + 2 * pad, size[1] + 2 * pad
        cut = (self.jitter + self.jitter2) if self.family == "lucid" else 0
        if cut >= min(height, width):
            raise VisUsageError(f"`jitter` {self.jitter} + {self.jitter2} would cut away the whole "
                                f"{height}x{width} px (padded) image; use a smaller `jitter` or a larger `size`")
        batch_pixels(count, height, width, name)


_DISTILL = dict(steps=2560, pad=16, jitter=16, scales=(1.0, 0.975, 1.025, 0.95, 1.05),
                angles=tuple(float(a) for a in range(-5, 6)), jitter2=8)
_PIXEL = dict(family="pixel", pad=0, jitter=0, scales=(1.0,), angles=(0.0,), jitter2=0)

#: Named presets. yosinski1..4 are the four hyperparameter sets of Yosinski et al. 2015, Table 1.
PRESETS: dict[str, Settings] = {
    "lucid": Settings(),
    "distill": Settings(**_DISTILL),
    "yosinski1": Settings(**_PIXEL, steps=500, lr_policy="progress", max_lr=100.0, desired_progress=2.0,
                          lr=100.0, decay=0.0, blur_radius=0.5, blur_every=4, norm_pct=50.0),
    "yosinski2": Settings(**_PIXEL, steps=750, lr=100.0, decay=0.3, norm_pct=20.0),
    "yosinski3": Settings(**_PIXEL, steps=1000, lr=100.0, decay=1e-4, blur_radius=1.0, blur_every=4),
    "yosinski4": Settings(**_PIXEL, steps=1000, lr_policy="progress", max_lr=1e8, desired_progress=2.0,
                          lr=1e8, blur_radius=0.5, blur_every=4, contrib_pct=90.0),
    "dream": Settings(**_PIXEL, steps=100, lr=1.5, lr_policy="normalized", roll=32, init_std=0.0),
}


def settings_for(preset: str, **overrides: Any) -> Settings:
    """The preset's settings with `overrides` (``None`` values are ignored), validated."""
    if preset not in PRESETS:
        raise VisUsageError(f"unknown `preset` {preset!r}; valid: {', '.join(PRESETS)}")
    names = {f.name for f in fields(Settings)}
    bad = [k for k in overrides if k not in names]
    if bad:
        raise unknown("setting", bad[0], sorted(names))
    chosen = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return replace(PRESETS[preset], **chosen).validate()
