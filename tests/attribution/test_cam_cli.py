"""`vis cam`: the three files and what they hold, the units' run files, and bad input — one line, exit 2,
nothing written (a batch writes its readable images and reports the others)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_run import tiny_mine_args
from vistoolbox import cam, load_model, load_tensor
from vistoolbox.cli import main
from vistoolbox.images import to_tensor, open_image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A tiny two-conv model file, photos, and a mining run of its last conv (layer 2)."""
    root = tmp_path_factory.mktemp("cam")
    args = tiny_mine_args(root, images=3, k=2)
    run(args + ["--out", str(root / "run")])
    model = ["--model", f"{root / 'tiny.py'}:make", "--weights", "random", "--input-size", "32"]
    (root / "broken.png").write_bytes(b"not a png")
    return {"root": root, "model": model, "photos": sorted(str(p) for p in (root / "data").glob("*.png")),
            "run": str(root / "run"), "broken": str(root / "broken.png")}


def run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as code:
        main(args)
    return int(code.value.code)


def test_writes_png_npz_json_with_the_maps_and_the_units(tiny, tmp_path, capsys):
    out = tmp_path / "c.png"
    code = run(["cam", *tiny["photos"][:2], *tiny["model"], "--layer", "0", "--target", "unit:2:1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    arrays = np.load(out.with_suffix(".npz"))
    model = load_model(f"{tiny['root'] / 'tiny.py'}:make", "random", input_size=32)
    images = torch.cat([to_tensor(model.preprocessing.model_crop(open_image(p))) for p in tiny["photos"][:2]])
    expected = cam(model, images, "0", target="unit:2:1")
    assert arrays["map"].dtype == np.float32 and arrays["map"].shape == tuple(expected.maps.shape)
    np.testing.assert_allclose(arrays["map"], expected.maps.numpy(), rtol=1e-5, atol=1e-7)
    assert arrays["upsampled"].shape == (2, 32, 32)
    assert record["target"] == "unit:2:1" and record["method"] == "gradcam" and record["layer_name"] == "0"
    assert record["weights"] == "random" and "torch" in record["versions"] and record["seed"] == 0
    for row, i in zip(record["images"], range(2)):
        assert row["score"] == pytest.approx(float(expected.record["images"][i]["score"]), rel=1e-5)
    behind = record["images"][0]["units_behind"]
    assert behind["pre_relu"] == pytest.approx(sum(float(expected.contributions[0, u, behind["y"], behind["x"]])
                                                   for u in range(expected.contributions.shape[1])), abs=1e-6)
    assert "montage" not in behind["units"][0]  # no run given
    assert load_tensor(out).shape[-1] > 2 * 32  # a grid of the two overlays with their colour bars


def test_units_behind_link_the_runs_montages(tiny, tmp_path, capsys):
    out = tmp_path / "u.png"
    assert run(["cam", tiny["photos"][0], *tiny["model"], "--layer", "2", "--target", "unit:2:3", "--run",
                tiny["run"], "--out", str(out)]) == 0, capsys.readouterr().err
    units = json.loads(out.with_suffix(".json").read_text())["images"][0]["units_behind"]["units"]
    # the unit's channel mean at its own layer: only unit 3 has a gradient, so it leads
    assert units[0]["unit"] == 3 and Path(units[0]["montage"]).is_file()
    assert all(u["contribution"] == 0 for u in units[1:])
    assert Path(units[0]["montage"]).resolve().is_relative_to(Path(tiny["run"]).resolve())


def test_a_run_without_the_layer_is_refused(tiny, tmp_path, capsys):
    code = run(["cam", tiny["photos"][0], *tiny["model"], "--layer", "0", "--run", tiny["run"],
                "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not in run" in err[0] and not list(tmp_path.iterdir())


@pytest.mark.parametrize("extra, message", [
    (["--target", "class:0"], "needs logits"),
    (["--target", "unit:2:99"], "out of range"),
    (["--layer", "2", "--target", "unit:0:0"], "no gradient reaches it"),
    (["--at", "99,0"], "--at 99,0 is outside the map"),
    (["--at", "x"], "cannot read --at"),
    (["--method", "nope"], "unknown --method"),
    (["--smooth", "eigen", "--method", "eigencam"], "eigencam is one already"),
    (["--metrics", None], "--metrics measure class probabilities"),
    (["--batch", "0"], "--batch must be at least 1"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tiny, tmp_path, capsys, extra, message):
    out = tmp_path / "bad.png"
    args = ["cam", tiny["photos"][0], *tiny["model"], "--layer", "0", "--target", "unit:2:0", "--out", str(out)]
    for flag, value in zip(extra[::2], extra[1::2]):
        if value is None:
            args.append(flag)
        elif flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    code = run(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not list(tmp_path.iterdir())


def test_unreadable_image_alone_writes_nothing(tiny, tmp_path, capsys):
    code = run(["cam", tiny["broken"], *tiny["model"], "--layer", "0", "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "broken.png" in err[0]
    assert not list(tmp_path.iterdir())


def test_a_batch_with_one_bad_image_writes_the_rest(tiny, tmp_path, capsys):
    out = tmp_path / "c.png"
    code = run(["cam", tiny["photos"][0], tiny["broken"], tiny["photos"][1], *tiny["model"], "--layer", "0",
                "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("vis: error:") == 1 and "broken.png" in err
    record = json.loads(out.with_suffix(".json").read_text())
    assert [row["source"] for row in record["images"]] == tiny["photos"][:2]
    assert np.load(out.with_suffix(".npz"))["map"].shape[0] == 2
