"""Atomic writes."""
from __future__ import annotations

import os

import numpy as np

from vistoolbox.files import file_mode, write_json, write_npz


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
