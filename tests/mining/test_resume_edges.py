"""Resume edges of `vis mine`: a kill in its first milliseconds, temp files left by a kill during a
write, and a resume with another batch size."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tiny_run import tiny_mine_args
from vistoolbox.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model, a dataset, the `vis mine` arguments and a reference run made without interruption."""
    root = tmp_path_factory.mktemp("resume")
    args = [*tiny_mine_args(root, images=6, k=3), "--checkpoint-every", "1"]
    vis(args + ["--out", str(root / "reference")])
    return root, args


def vis(args: list[str]) -> None:
    with pytest.raises(SystemExit) as code:
        main(args)
    assert code.value.code == 0, args


def same_run(run: Path, reference: Path) -> None:
    """Equal top-k and statistics, every patch byte-identical, status complete, no temp file."""
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    for name in ("topk.npz", "stats.npz"):
        a, b = np.load(run / "layers/2" / name), np.load(reference / "layers/2" / name)
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    patches = sorted(p.name for p in (reference / "layers/2/patches").iterdir())
    assert patches == sorted(p.name for p in (run / "layers/2/patches").iterdir())
    assert all((run / "layers/2/patches" / n).read_bytes() == (reference / "layers/2/patches" / n).read_bytes()
               for n in patches)
    assert not [p for p in run.rglob("*.tmp")]


@pytest.mark.parametrize("left", [["images.json"], [".images.json.k2x9a0qz.tmp"], [".manifest.json.k2x9a0qz.tmp"],
                                  ["images.json", ".manifest.json.k2x9a0qz.tmp"]])
def test_a_run_killed_before_its_manifest_starts_again(setup, tmp_path, left):
    root, args = setup
    out = tmp_path / "run"
    out.mkdir()
    for name in left:
        (out / name).write_bytes((root / "reference" / "images.json").read_bytes()[:20])
    vis(args + ["--out", str(out)])
    same_run(out, root / "reference")


def test_foreign_files_are_still_refused(setup, tmp_path, capsys):
    root, args = setup
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as code:
        main(args + ["--out", str(out)])
    assert code.value.code == 2 and "is not a vistoolbox run" in capsys.readouterr().err
    assert (out / "notes.txt").exists()


KILLER = textwrap.dedent("""
    import os, sys
    from vistoolbox.cli import main
    calls, at = [0], int(sys.argv[1])
    real = os.replace
    def replace(src, dst, *args, **kwargs):   # kill -9 at the `at`-th atomic rename, its temp file left
        calls[0] += 1
        if calls[0] == at:
            os._exit(137)
        return real(src, dst, *args, **kwargs)
    os.replace = replace
    main(sys.argv[2:])
""")


@pytest.mark.parametrize("at", [1, 2])
def test_kill_at_the_first_writes_then_resume(setup, tmp_path, at):
    """A real process killed (os._exit, no cleanup) at its first and second atomic rename — the
    manifest, then images.json — and the rerun finishes with the uninterrupted run's bytes."""
    root, args = setup
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(at), *args, "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    assert [p for p in out.iterdir() if p.name.endswith(".tmp")]   # the kill left a temp file
    vis(args + ["--out", str(out)])
    same_run(out, root / "reference")


def test_temp_files_of_a_kill_during_patch_writing_are_removed(setup, tmp_path):
    root, args = setup
    out = shutil.copytree(root / "reference", tmp_path / "run")
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))   # killed while writing patches
    stale = [out / "layers/2/patches/.unit_0001_2.png.x8d7a0qk.tmp", out / "layers/2/.topk.npz.a1b2c3d4.tmp",
             out / ".checkpoint.npz.zz9_0abc.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    (out / "layers/2/patches/notes.tmp").write_text("not ours: kept")
    vis(args + ["--out", str(out)])
    assert not any(p.exists() for p in stale) and (out / "layers/2/patches/notes.tmp").exists()
    (out / "layers/2/patches/notes.tmp").unlink()
    same_run(out, root / "reference")


def test_resuming_with_another_batch_size_is_refused(setup, tmp_path, capsys):
    root, args = setup
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLER, "4", *args, "--out", str(out)], capture_output=True,
                            text=True, timeout=300)           # after the first checkpoint
    assert killed.returncode == 137 and (out / "checkpoint.npz").exists(), killed.stderr
    other = [a if a != "2" or args[i - 1] != "--batch-size" else "3" for i, a in enumerate(args)]
    with pytest.raises(SystemExit) as code:
        main(other + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code.value.code == 2 and "--batch-size 2" in err and err.count("\n") == 1
    assert json.loads((out / "manifest.json").read_text())["batch_size"] == 2
    vis(args + ["--out", str(out)])                           # the same batch size resumes
    same_run(out, root / "reference")
