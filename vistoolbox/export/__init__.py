"""``vis export``: runs as a static site — plain HTML, CSS, a little JavaScript and images that work
from ``file://`` or any static host, with no server and nothing fetched from elsewhere.

::

    SITE/index.html                              runs and their layers (shape, receptive field, aliases)
    SITE/<run>/<layer>/index.html                the layer's unit grid (one sprite image)
    SITE/<run>/<layer>/unit_0012.html            a unit: top-9, source image with its box, views,
                                                 optimised image, histogram (the permalink)
    SITE/<run>/<layer>/patches/, maximize/       the run's own PNGs, hard-linked (else copied)
    SITE/<run>/_images/000123.jpg                dataset images the top-9 come from, by index
    SITE/_site/style.css, site.js                the look and the arrow keys
    SITE/export.json                             the files this export owns (for the next re-export)

Modules: :mod:`.content` (what a run shows, read through :mod:`vistoolbox.rundir`), :mod:`.pages`
(HTML), :mod:`.writer` (incremental writing), :mod:`.build` (``export_site``).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from .build import MIB, ExportReport, export_site

__all__ = ["ExportReport", "MIB", "export_command", "export_site"]


def export_command(runs: Sequence[str | Path], out: str | Path = "vis-site",
                   datasets: Sequence[str | Path] = ()) -> str:
    """The shell command that exports `runs` into `out` with the source images of `datasets` (paths
    quoted for a POSIX shell)."""
    return " ".join(["vis", "export", *(shlex.quote(str(r)) for r in runs), "--out", shlex.quote(str(out)),
                     *(f"--dataset {shlex.quote(str(d))}" for d in datasets)])
