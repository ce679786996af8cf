"""A damaged run file (checkpoint, manifest, shard state) is one line and exit 1 — never a traceback,
never "interrupted" — and says what to do."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_run import tiny_mine_args
from vistoolbox.cli import main

DAMAGE = {
    "empty": b"",
    "garbage": b"\x00\x01garbage{",
    "truncated": None,                                    # the first half of the real file
    "json list": b"[1, 2, 3]",
    "wrong types": json.dumps({"model": 5, "layers": "x", "status": "running", "k": "nine"}).encode(),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny model, a dataset, an unfinished run (with its checkpoint) and two complete shard runs."""
    root = tmp_path_factory.mktemp("damaged")
    base = tiny_mine_args(root, images=4, k=2)
    for out, extra in (("run", []), ("shard0", ["--shard", "0/2"]), ("shard1", ["--shard", "1/2"])):
        with pytest.raises(SystemExit) as code:
            main([*base, "--out", str(root / out), *extra])
        assert code.value.code == 0
    from vistoolbox.mining.topk import MiningState  # an unfinished run: a checkpoint and status running
    run = root / "run"
    MiningState.load(root / "shard0" / "shard_state.npz").save(run / "checkpoint.npz")
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    return root, base


def damage(path: Path, how: str) -> None:
    path.write_bytes(DAMAGE[how] if DAMAGE[how] is not None else path.read_bytes()[: path.stat().st_size // 2])


def vis_fails(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as code:
        main(args)
    err = capsys.readouterr().err.strip()
    assert code.value.code == 1 and err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_checkpoint_on_resume(runs, tmp_path, capsys, how):
    root, base = runs
    run = shutil.copytree(root / "run", tmp_path / "run")
    damage(run / "checkpoint.npz", how)
    err = vis_fails([*base, "--out", str(run)], capsys)
    assert f"{str(run / 'checkpoint.npz')!r} is damaged" in err and "delete it" in err


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_manifest_on_resume_merge_and_dashboard(runs, tmp_path, capsys, how):
    root, base = runs
    run = shutil.copytree(root / "run", tmp_path / "run")
    damage(run / "manifest.json", how)
    assert "manifest.json' is damaged" in vis_fails([*base, "--out", str(run)], capsys)
    shard = shutil.copytree(root / "shard1", tmp_path / "shard1")
    damage(shard / "manifest.json", how)
    err = vis_fails(["merge", str(root / "shard0"), str(shard), "--out", str(tmp_path / "merged")], capsys)
    assert "manifest.json' is damaged" in err
    err = vis_fails(["dashboard", "--run", str(run), "--cache-dir", str(tmp_path / "cache")], capsys)
    assert "manifest.json' is damaged" in err


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated"])
def test_damaged_shard_state_on_merge(runs, tmp_path, capsys, how):
    root, _ = runs
    shard = shutil.copytree(root / "shard1", tmp_path / "shard1")
    damage(shard / "shard_state.npz", how)
    err = vis_fails(["merge", str(root / "shard0"), str(shard), "--out", str(tmp_path / "merged")], capsys)
    assert "shard_state.npz' is damaged" in err and "mine that shard again" in err


def test_a_checkpoint_of_another_shape_is_refused(runs, tmp_path, capsys):
    root, base = runs
    run = shutil.copytree(root / "run", tmp_path / "run")
    arrays = dict(np.load(run / "checkpoint.npz"))
    np.savez(run / "checkpoint.npz", **{k: (v[:, :1] if v.ndim == 2 and k != "2/hist" else v) for k, v in arrays.items()})
    assert "layers or k are not the run's" in vis_fails([*base, "--out", str(run)], capsys)


def test_empty_checkpoint_is_not_reported_as_an_interruption(runs, tmp_path):
    """click turns an EOFError into 'Abort' (exit 130); a real `vis` process must say what is wrong."""
    root, base = runs
    run = shutil.copytree(root / "run", tmp_path / "run")
    (run / "checkpoint.npz").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "vistoolbox.cli", *base, "--out", str(run)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "is damaged" in proc.stderr, proc.stderr
