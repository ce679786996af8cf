"""The default preset `quick`: Lucid at half the model's input size with the Distill article's jitters,
its transforms scaled to the size used; every other preset keeps its settings exactly."""
from __future__ import annotations

import dataclasses

import pytest

from vistoolbox.actmax import DEFAULT_PRESET, PRESETS, maximize, settings_for
from vistoolbox.actmax.presets import sized
from vistoolbox.errors import VisUsageError


def test_the_default_is_quick_and_lucid_is_unchanged():
    assert DEFAULT_PRESET == "quick"
    quick, lucid = PRESETS["quick"], PRESETS["lucid"]
    changed = {f.name for f in dataclasses.fields(quick) if getattr(quick, f.name) != getattr(lucid, f.name)}
    assert changed == {"steps", "lr", "size_scale", "jitter", "jitter2"}
    assert (quick.steps, quick.lr, quick.size_scale) == (352, 0.1, 0.5)
    assert (quick.jitter, quick.jitter2) == (PRESETS["distill"].jitter, PRESETS["distill"].jitter2) == (16, 8)
    assert (lucid.steps, lucid.lr, lucid.size, lucid.size_scale, lucid.pad, lucid.jitter, lucid.jitter2) == \
        (512, 0.05, None, 1.0, 12, 8, 4)


@pytest.mark.parametrize("preset", sorted(name for name, s in PRESETS.items() if s.size_scale == 1))
def test_sized_leaves_every_scale_one_preset_alone(preset):
    settings = PRESETS[preset]
    for size in (None, 64, 300):
        given = dataclasses.replace(settings, size=size)
        assert sized(given, 224) == (given, ((size or 224), (size or 224)))


def test_sized_halves_the_input_and_scales_the_transforms_with_it():
    quick = settings_for("quick")
    settings, size = sized(quick, 224)
    assert size == (112, 112) and settings.size == 112
    assert (settings.pad, settings.jitter, settings.jitter2) == (6, 8, 4)     # 12, 16, 8 at half size
    assert sized(quick, 224, fixed=True)[1] == (224, 224)                     # a ViT keeps its one size
    assert sized(quick, 224, fixed=True)[0].pad == 12
    assert sized(settings_for("quick", size=224), 224)[0].pad == 12           # the input size: unscaled
    assert sized(settings, 224) == (settings, (112, 112))                     # sized settings replay as they are
    explicit, size = sized(settings_for("quick", size=56), 224)
    assert size == (56, 56) and (explicit.pad, explicit.jitter, explicit.jitter2) == (3, 4, 2)
    with pytest.raises(VisUsageError, match="size_scale"):
        settings_for("lucid", size_scale=1.5)


def test_maximize_with_the_default_records_the_half_size_it_used(alexnet_random):
    res = maximize(alexnet_random, "conv4:12", steps=3)
    assert tuple(res.images.shape[-2:]) == (112, 112) == tuple(res.record["size"])
    assert res.record["preset"] == "quick" and res.record["settings"]["size"] == 112
    assert res.record["settings"]["pad"] == 6 and res.record["settings"]["size_scale"] == 1.0
    recorded = {k: tuple(map(tuple, v)) if k == "schedule" else tuple(v) if isinstance(v, list) else v
                for k, v in res.record["settings"].items()}
    for again in (maximize(alexnet_random, "conv4:12", preset="quick", size=112, steps=3),
                  maximize(alexnet_random, "conv4:12", preset="lucid", **recorded)):
        assert (again.images == res.images).all()      # the size, or the recorded settings, reproduce it
