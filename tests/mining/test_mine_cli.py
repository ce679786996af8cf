"""`vis mine` / `vis merge` from the command line: happy path and one-line errors for bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vistoolbox import open_run
from vistoolbox.cli import main

FAST = ["--model", "alexnet", "--weights", "random", "--input-size", "64", "--crop", "64", "--resize", "72",
        "--quiet"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from skimage import data

    root = tmp_path_factory.mktemp("cli_images")
    for i, picture in enumerate([data.astronaut(), data.coffee(), data.chelsea(), data.camera()]):
        Image.fromarray(picture[:200, :200]).save(root / f"p{i}.png")
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_mine_then_merge_from_the_cli(images, tmp_path, capsys):
    common = ["mine", *FAST, "--dataset", str(images), "--layers", "conv1", "--k", "2", "--batch-size", "2"]
    for i in (0, 1):
        code, out, err = run_cli([*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")], capsys)
        assert code == 0, err
        assert out.strip() == str(tmp_path / f"s{i}")
    code, out, err = run_cli(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m"),
                              "--quiet"], capsys)
    assert code == 0, err
    merged = open_run(tmp_path / "m")
    assert merged.complete and merged.manifest["shard"] is None and merged.manifest["counts"]["seen"] == 4
    assert merged.patch("conv1", 0).exists() and merged.patch("conv1", 63, 1).exists()
    # rerunning a complete run is a no-op
    code, out, _ = run_cli([*common, "--out", str(tmp_path / "full")], capsys)
    stamp = (tmp_path / "full" / "layers" / "features.0" / "topk.npz").stat().st_mtime_ns
    code, out, _ = run_cli([*common, "--out", str(tmp_path / "full")], capsys)
    assert code == 0 and (tmp_path / "full" / "layers" / "features.0" / "topk.npz").stat().st_mtime_ns == stamp
    full = open_run(tmp_path / "full").topk("conv1")
    for key, value in merged.topk("conv1").items():
        np.testing.assert_array_equal(value, full[key])


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "/no/such/folder"], "does not exist"),
    (["--layers", "conv9"], "unknown layer 'conv9'"),
    (["--k", "0"], "--k must be at least 1"),
    (["--with", "saliency"], "unknown view 'saliency' in --with; valid: deconv, backprop, guided"),
    (["--shard", "3/2"], "--shard must be i/n"),
    (["--shard", "half"], "--shard must look like i/n"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--resize", "32"], "--resize (32) must be at least --crop (64)"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--backend", "ray", "--shard", "0/2"], "do not combine"),
])
def test_bad_input_is_one_line_and_exit_2(images, tmp_path, capsys, extra, message):
    args = ["mine", *FAST, "--dataset", str(images), "--out", str(tmp_path / "r"), *extra]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_empty_dataset_and_merge_errors(tmp_path, images, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["mine", *FAST, "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "has no images" in err
    code, _, err = run_cli(["merge", str(tmp_path / "empty"), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "is not a vistoolbox run" in err


def test_help_lists_the_options():
    from click.testing import CliRunner

    from vistoolbox.cli import vis

    out = CliRunner().invoke(vis, ["mine", "--help"]).output
    for option in ("--dataset", "--layers", "--k", "--limit", "--resize", "--crop", "--workers", "--with",
                   "--shard", "--backend", "--overwrite", "--checkpoint-every"):
        assert option in out
