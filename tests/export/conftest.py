"""Fixtures of the export tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from export_runs import write_run


@pytest.fixture
def small_run(tmp_path) -> Path:
    return write_run(tmp_path / "small")
