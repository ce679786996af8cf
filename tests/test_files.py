"""Atomic writes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vistoolbox.files import file_mode, is_temp_of, write_json, write_npz


def test_atomic_writes_get_the_permissions_of_a_plain_new_file(tmp_path):
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # an ordinary open(): 0666 minus the process umask
    path = write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert path.read_text().strip().startswith("{")
    assert (os.stat(path).st_mode & 0o777) == (os.stat(reference).st_mode & 0o777) == file_mode()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp file left


def test_write_npz_round_trips(tmp_path):
    arrays = {"a": np.arange(6).reshape(2, 3), "b": np.array([1.5], dtype=np.float32)}
    with np.load(write_npz(tmp_path / "x.npz", arrays)) as data:
        assert {k: data[k].tolist() for k in data.files} == {k: v.tolist() for k, v in arrays.items()}


def record_flushes(monkeypatch) -> list[tuple[str, str]]:
    """Record fsync calls (by the path their descriptor names) and renames, in order."""
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def flushing(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return fsync(fd)

    def renaming(src, dst, *args, **kwargs):
        events.append(("replace", str(dst)))
        return replace(src, dst, *args, **kwargs)
    monkeypatch.setattr(os, "fsync", flushing)
    monkeypatch.setattr(os, "replace", renaming)
    return events


def test_durable_writes_flush_the_file_then_the_folder(tmp_path, monkeypatch):
    """A power loss must not leave a renamed-but-empty manifest: data flushed before the rename,
    the folder entry after it. Plain atomic writes (patches) are not flushed."""
    if not os.path.isdir("/proc/self/fd"):
        import pytest
        pytest.skip("needs /proc to name file descriptors")
    events = record_flushes(monkeypatch)
    path = write_json(tmp_path / "run" / "manifest.json", {"status": "running"}, durable=True)
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert is_temp_of(Path(events[0][1]).name, ["manifest.json"]) and events[2][1] == str(path.parent)
    events.clear()
    write_npz(tmp_path / "run" / "patch.npz", {"a": np.zeros(2)})
    assert [kind for kind, _ in events] == ["replace"]


def test_mining_flushes_manifest_checkpoint_and_results(tmp_path, monkeypatch, alexnet_random):
    from skimage import data
    from PIL import Image

    from vistoolbox import mine

    if not os.path.isdir("/proc/self/fd"):
        import pytest
        pytest.skip("needs /proc to name file descriptors")
    (tmp_path / "data").mkdir()
    for i, name in enumerate(["astronaut", "coffee"]):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(tmp_path / "data" / f"{i}.png")
    events = record_flushes(monkeypatch)
    mine(alexnet_random, tmp_path / "data", tmp_path / "run", layers=["conv1"], k=1, batch_size=1,
         checkpoint_every=1, shard=(0, 1), quiet=True)
    flushed = {name for kind, path in events if kind == "fsync"
               for name in ("manifest.json", "images.json", "checkpoint.npz", "shard_state.npz", "topk.npz",
                            "stats.npz") if is_temp_of(Path(path).name, [name])}
    assert flushed == {"manifest.json", "images.json", "checkpoint.npz", "shard_state.npz", "topk.npz", "stats.npz"}
    assert ("fsync", str(tmp_path / "run")) in events
