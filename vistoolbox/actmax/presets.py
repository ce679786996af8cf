"""Settings for one optimisation and the named presets (``lucid``, ``distill``, ``yosinski1..4``,
``dream``). Every field can be overridden by name (``steps=64``, ``blur_radius=0.5``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import VisUsageError, unknown
from ..limits import MAX_PIXELS, batch_pixels, learning_rate, number, side, steps, weight, whole

__all__ = ["DEFAULT_PRESET", "LUCID_ANGLES", "LUCID_SCALES", "PRESETS", "Settings", "check_schedule", "parse_schedule", "plan_stages",
           "settings_for", "sized"]

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
    size: int | None = None  # None: the model's input size times `size_scale`
    # with `size` None: this fraction of the model's input size, and the pixel sizes (pad, jitters,
    # roll, blur) shrunk by the same factor; models with one fixed input size (ViTs) keep theirs
    size_scale: float = 1.0
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
    # coarse-to-fine: (fraction of the final size, fraction of the steps) per stage, smallest first;
    # pad, jitter, roll and blur radius are in final-size pixels and shrink with the stage
    schedule: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
    carry: str = "upsample"  # how a stage grows: "upsample" (higher resolution) or "tile" (larger canvas)
    # lucid family: "fourier" (Lucid) or "phase" (MACO: phase only, natural magnitude spectrum)
    param: str = "fourier"
    spectrum: str | None = None  # phase: image folder for the magnitude spectrum (None: the sample crops)
    transparency: bool = False  # also accumulate |d objective / d image| (MACO's transparency map)
    seed_penalty: float = 1.0  # accentuation: weight of the distance to the seed image's parameters

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return [plain(v) for v in value] if isinstance(value, tuple) else value

        return {k: plain(v) for k, v in asdict(self).items()}

    def shrunk(self, factor: float) -> "Settings":
        """These settings with the pixel sizes (pad, jitters, roll, blur radius) scaled by `factor`:
        the same transforms relative to a canvas `factor` times the size they were chosen for (a
        coarse-to-fine stage, or a small image such as the demo's conv1 renders)."""
        return replace(self, pad=round(self.pad * factor), jitter=round(self.jitter * factor),
                       jitter2=round(self.jitter2 * factor), roll=round(self.roll * factor),
                       blur_radius=self.blur_radius * factor)

    def validate(self) -> "Settings":
        """Raise :class:`VisUsageError` for values that cannot work (NaN, infinity, negative, zero
        where a count or size is needed, sizes above :data:`~vistoolbox.limits.MAX_PIXELS`)."""
        if self.family not in ("lucid", "pixel"):
            raise VisUsageError(f"unknown family {self.family!r}; valid: lucid, pixel")
        steps(self.steps, "steps")
        learning_rate(self.lr, "lr")
        learning_rate(self.max_lr, "max_lr")
        if self.size is not None:
            side(self.size, "size")
        if not 0 < number(self.size_scale, "size_scale") <= 1:
            raise VisUsageError(f"`size_scale` must be in (0, 1], got {self.size_scale}")
        for name in ("norm_pct", "contrib_pct"):
            value = number(getattr(self, name), name, 0)
            if not value < 100:
                raise VisUsageError(f"`{name}` must be in [0, 100), got {value}")
        if not 0 <= number(self.decay, "decay") < 1:
            raise VisUsageError(f"`decay` must be in [0, 1), got {self.decay}")
        number(self.blur_radius, "blur_radius", 0, math.isqrt(MAX_PIXELS))  # wider than any image: meaningless
        for name in ("blur_every", "pad", "jitter", "jitter2", "roll"):
            whole(getattr(self, name), name, 0)
        for name in ("sd", "init_std", "decay_power", "desired_progress"):
            number(getattr(self, name), name, 0)
        for values, name in ((self.scales, "scales"), (self.angles, "angles")):
            for value in values:
                number(value, name, positive=name == "scales")
        if self.param not in ("fourier", "phase"):
            raise VisUsageError(f"unknown `param` {self.param!r}; valid: fourier, phase")
        if self.param == "phase" and self.family != "lucid":
            raise VisUsageError("`param` phase needs the lucid family of presets (lucid, distill, maco, ...)")
        weight(self.seed_penalty, "seed_penalty")
        check_schedule(self.schedule)
        if self.carry not in ("upsample", "tile"):
            raise VisUsageError(f"unknown `carry` {self.carry!r}; valid: upsample, tile")
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


def sized(settings: Settings, input_size: int, fixed: bool = False) -> tuple[Settings, tuple[int, int]]:
    """The settings a run uses and its image size: `settings.size` when set, else the model's
    `input_size` times ``size_scale`` (the whole input size for a model that accepts only that one,
    `fixed`). For a preset with a ``size_scale`` other than 1 the pixel sizes (pad, jitters, roll,
    blur) are meant at the model's input size, so they scale with the size used
    (:meth:`Settings.shrunk`); the returned settings then hold that size and those pixel sizes with a
    ``size_scale`` of 1, so that they replay as they are. Other presets are returned unchanged."""
    if settings.size:
        side_px = settings.size
    elif settings.size_scale == 1 or fixed:
        side_px = input_size
    else:
        side_px = max(1, round(input_size * settings.size_scale))
    if settings.size_scale != 1:  # from here on in the pixels of the size used (a replay scales nothing again)
        settings = replace(settings.shrunk(side_px / input_size), size=side_px, size_scale=1.0)
    return settings, (side_px, side_px)


def check_schedule(schedule: tuple[tuple[float, float], ...]) -> None:
    """A schedule is non-empty, its sizes grow to 1 (the final size), its step fractions are
    positive and add up to 1."""
    if not schedule:
        raise VisUsageError("`schedule` needs at least one stage, e.g. 0.5:0.75,1:0.25")
    scales = [float(scale) for scale, _ in schedule]
    fractions = [float(fraction) for _, fraction in schedule]
    if any(not 0 < v <= 1 for v in scales) or scales != sorted(scales) or scales[-1] != 1.0:
        raise VisUsageError(f"`schedule` sizes must grow within (0, 1] and end at 1, got {scales}")
    if any(not f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise VisUsageError(f"`schedule` step fractions must be positive and add up to 1, got {fractions}")


def parse_schedule(text: str) -> tuple[tuple[float, float], ...]:
    """``"0.5:0.75,1:0.25"`` → ((0.5, 0.75), (1.0, 0.25)): 75 % of the steps at half size, then full size."""
    try:
        stages = tuple((float(a), float(b)) for a, b in (part.split(":") for part in text.split(",")))
    except ValueError:
        raise VisUsageError(f"cannot read `schedule` {text!r}; use size:steps fractions, e.g. 0.5:0.75,1:0.25") from None
    check_schedule(stages)
    return stages


def plan_stages(settings: "Settings", size: tuple[int, int]) -> list[tuple[tuple[int, int], int]]:
    """The schedule made concrete for a final `size`: ``[((h, w), steps), ...]``. Steps are split by
    rounding the cumulative fractions; stages left with no step are dropped, and the final-size
    stage always keeps at least one step."""
    total = settings.steps
    ends = [round(total * sum(f for _, f in settings.schedule[:i + 1])) for i in range(len(settings.schedule))]
    ends[-1] = total
    if len(ends) > 1 and ends[-2] >= total:
        ends[-2] = total - 1
    plan: list[tuple[tuple[int, int], int]] = []
    start = 0
    for (scale, _), end in zip(settings.schedule, ends):
        end = max(end, start)
        stage = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        if end > start:
            if plan and plan[-1][0] == stage:
                plan[-1] = (stage, plan[-1][1] + end - start)
            else:
                plan.append((stage, end - start))
        start = end
    return plan


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
    # the default: Lucid at half the model's input size (transforms shrunk with it) with the Distill
    # article's jitters (16 and 8 px at the input size: 8 and 4 at 112 px, so a deep layer's stride
    # of 8 is still jittered over), 352 steps at twice Lucid's rate. Measured (docs/benchmarks.md):
    # on VGG16 conv4_3:12, 8 seeds, 1/6.0 of lucid's time, 1.39x its activation, 1.016x its plausibility
    "quick": Settings(steps=352, lr=0.1, size_scale=0.5, jitter=16, jitter2=8),
    # MACO (Fel et al. 2023): phase only under a natural magnitude spectrum, with its transparency map
    "maco": Settings(steps=256, lr=0.1, param="phase", transparency=True),
    # feature accentuation (Hamblin et al. 2024): from a seed image, milder transforms, one stage
    "accentuate": Settings(steps=128, pad=4, jitter=4, scales=(0.95, 0.975, 1.0, 1.025, 1.05),
                           angles=tuple(float(a) for a in range(-5, 6)), jitter2=2, seed_penalty=0.1),
}


#: The preset `maximize` and `vis maximize` use when none is named.
DEFAULT_PRESET = "quick"


def settings_for(preset: str, **overrides: Any) -> Settings:
    """The preset's settings with `overrides` (``None`` values are ignored), validated."""
    if preset not in PRESETS:
        raise VisUsageError(f"unknown `preset` {preset!r}; valid: {', '.join(PRESETS)}")
    names = {f.name for f in fields(Settings)}
    bad = [k for k in overrides if k not in names]
    if bad:
        raise unknown("setting", bad[0], sorted(names))
    chosen = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    if isinstance(chosen.get("schedule"), str):
        chosen["schedule"] = parse_schedule(chosen["schedule"])
    elif "schedule" in chosen:
        chosen["schedule"] = tuple((float(a), float(b)) for a, b in chosen["schedule"])
    return replace(PRESETS[preset], **chosen).validate()
