"""Atomic writes."""
from __future__ import annotations


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from vistoolbox.files import FILE_MODE, write_json

    path = write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert path.read_text().strip().startswith("{") and (os.stat(path).st_mode & 0o777) == FILE_MODE
    assert FILE_MODE & 0o044  # readable by others under a usual umask (0022)
