"""Feature accentuation and the plausibility measure, against independent references: the seed
image itself, and natural patches versus noise."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vistoolbox.actmax import accentuate, maximize
from vistoolbox.actmax.accentuate import topk_seeds
from vistoolbox.actmax.quality import Judge, centre_crop, judge_features, plausibility
from vistoolbox.cli import main
from vistoolbox.mining import mine


@pytest.fixture(scope="module")
def seeds(astronaut) -> torch.Tensor:
    """Two real 64 px crops, 8-bit."""
    crops = [astronaut[..., 60:188, 180:308], astronaut[..., 300:428, 200:328]]
    small = torch.cat([torch.nn.functional.interpolate(c, size=(64, 64), mode="area") for c in crops])
    return small.mul(255).round().div(255)


def test_huge_seed_penalty_returns_the_seed_and_none_moves_away(alexnet_random, seeds):
    kept = accentuate(alexnet_random, "conv3:5", seeds, seed_penalty=1e6, steps=16)  # the largest weight allowed
    diff = (kept.images - seeds).abs() * 255
    assert diff.mean() < 0.5 and diff.max() <= 4  # within 8-bit rounding and Adam's last steps
    free = accentuate(alexnet_random, "conv3:5", seeds, seed_penalty=0.0, steps=16)
    assert ((free.images - seeds).abs() * 255).mean() > 5
    assert all(b > a for a, b in zip(free.record["activation_initial"], free.record["activation_final"]))
    assert free.record["activation_initial"] == pytest.approx(kept.record["activation_initial"])
    assert free.record["kind"] == "accentuate" and free.record["seeds"] == ["tensor", "tensor"]


@pytest.fixture(scope="module")
def judge(hed_vgg16) -> Judge:
    """The default judge (VGG16 hed relu5_3, 128 px) with a smaller centre sample (test time)."""
    return Judge(hed_vgg16, centre_units=16)


@pytest.fixture(scope="module")
def vgg_run(hed_vgg16, tmp_path_factory) -> str:
    """VGG16 (hed) conv4_3 mined over 48 real 224 px crops: trained units have coherent top-9s."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick"):
        array = getattr(data, name)()
        array = np.repeat(array[..., None], 3, 2) if array.ndim == 2 else array[..., :3]
        h, w = array.shape[:2]
        for i in range(8):
            top, left = (i * 41) % max(1, h - 256), (i * 67) % max(1, w - 256)
            Image.fromarray(array[top:top + 256, left:left + 256]).save(folder / f"{name}_{i}.png")
    out = tmp_path_factory.mktemp("run") / "run"
    return str(mine(hed_vgg16, folder, out, layers=["conv4_3"], quiet=True))


def test_natural_top1_patch_is_more_plausible_than_noise(judge, vgg_run):
    """Leave-one-out: a unit's top-1 patch against its ranks 2..9 beats a noise image of the same
    size against the same references, for (nearly) every unit and clearly on average."""
    natural, noise = [], []
    for unit in (3, 12, 40, 77, 150, 201, 330, 480):
        patches, _ = topk_seeds(vgg_run, "conv4_3", unit)
        random = torch.rand(patches[0].shape, generator=torch.Generator().manual_seed(unit))
        feats = judge_features(judge, [patches[0], random, *patches[1:]])
        natural.append(plausibility(feats[0], feats[2:]))
        noise.append(plausibility(feats[1], feats[2:]))
    wins = sum(a > b for a, b in zip(natural, noise))
    assert wins >= 7 and np.mean(natural) - np.mean(noise) > 0.2, (natural, noise)


def test_sidecar_holds_the_plausibility_against_a_run(hed_vgg16, judge, vgg_run):
    res = maximize(hed_vgg16, "conv4_3:12", steps=2, size=64, run=vgg_run, judge=judge)
    assert len(res.record["plausibility"]) == 1 and -1 <= res.record["plausibility"][0] <= 1
    assert -1 <= res.record["plausibility_centred"][0] <= 1
    assert res.record["judge"]["layer"] == "relu5_3" and res.record["reference_k"] == 9
    assert isinstance(res.unit_record(0)["plausibility"], float)
    plain = maximize(hed_vgg16, "conv4_3:12", steps=1, size=64)
    assert plain.record["plausibility"] is None and "run" in plain.record["plausibility_note"]


def test_cli_from_topk_accentuates_every_patch(vgg_run, judge, tmp_path, capsys, monkeypatch):
    from vistoolbox.actmax import api

    monkeypatch.setattr(api, "default_judge", lambda model=None: judge)  # the small judge: test time
    out = tmp_path / "acc.png"
    with pytest.raises(SystemExit) as exc:
        main(["maximize", "--layer", "conv4_3", "--unit", "12", "--from-topk", vgg_run, "--rank", "0-1",
              "--steps", "2", "--out", str(out), "--quiet"])
    assert exc.value.code == 0, capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["kind"] == "accentuate" and record["neuron"] is not None and len(record["seeds"]) == 2
    assert len(record["plausibility"]) == 2  # judged against the same run's patches
    assert sorted(p.name for p in (tmp_path / "acc").glob("unit_*.png")) == ["unit_0012_rank0.png", "unit_0012_rank1.png"]


def test_centre_crop_takes_the_middle():
    x = torch.arange(100.0).view(1, 1, 10, 10).expand(1, 3, 10, 10)
    assert torch.equal(centre_crop(x, (4, 4))[0, 0], x[0, 0, 3:7, 3:7])
    assert centre_crop(x, (20, 20)).shape[-1] == 10


def test_errors_about_a_run_without_patches_name_the_parameter_not_a_flag(alexnet_random, astronaut, tmp_path):
    """Library messages name Python parameters in the project's convention (`patches`); the CLI
    swaps in its own flags, so no ``--flag`` may appear in them."""
    from vistoolbox.actmax.quality import unit_plausibility
    from vistoolbox.errors import VisUsageError

    (tmp_path / "photos").mkdir()
    for i in range(2):
        crop = astronaut[0, :, 100 * i:100 * i + 128, 150:278].permute(1, 2, 0).mul(255).byte().numpy()
        Image.fromarray(crop).save(tmp_path / "photos" / f"{i}.png")
    run = str(mine(alexnet_random, tmp_path / "photos", tmp_path / "run", layers=["conv1"], k=2, batch_size=2,
                   patches=False, quiet=True))
    with pytest.raises(VisUsageError) as seeds_error:
        topk_seeds(run, "conv1", 0)
    with pytest.raises(VisUsageError) as centre_error:
        unit_plausibility(run, "conv1", [0], torch.rand(1, 3, 64, 64), Judge(alexnet_random, centre_units=2))
    for error in (seeds_error.value, centre_error.value):
        assert "--" not in str(error) and "patches" in error.params, str(error)
