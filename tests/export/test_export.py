"""`vis export` without a browser: the site's files and links, incremental re-export, the size
guard, escaping of hostile names, the CLI and the dashboard's hint."""
from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export_runs import write_run
from vistoolbox import VisUsageError, open_run
from vistoolbox.export import MIB, export_command, export_site
from vistoolbox.images import save_png


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append((tag, dict(attrs)))


def tags(page: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page.read_text())
    return parser.tags


def site_files(site: Path) -> dict[str, int]:
    """rel path → mtime_ns of every file of the site."""
    return {p.relative_to(site).as_posix(): p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}


def links(site: Path) -> list[tuple[Path, str]]:
    """(page, URL) of every src/href of every page (fragments dropped)."""
    found = []
    for page in site.rglob("*.html"):
        for _tag, attrs in tags(page):
            for key in ("src", "href", "data-src"):
                value = attrs.get(key)
                if value and not value.startswith("#"):
                    found.append((page, value.split("#")[0]))
    return found


def test_site_has_a_page_per_unit_and_links_only_inside_itself(small_run, tmp_path):
    site = tmp_path / "site"
    report = export_site([small_run], site)
    run = open_run(small_run)
    for layer in run.layers:
        pages = sorted((site / "run" / layer).glob("unit_*.html"))
        assert [p.name for p in pages] == [f"unit_{u:04d}.html" for u in range(20)]
    found = links(site)
    assert len(found) > 20 * 2 * 3
    for page, url in found:
        assert "://" not in url and not url.startswith("/"), (page, url)
        target = (page.parent / url).resolve()
        assert target.is_relative_to(site.resolve()) and target.is_file(), (page, url)
    # the run's patches are the same files (hard links), not re-encoded copies
    patch = run.patch("conv_b", 7, 2)
    assert os.path.samefile(site / "run" / "conv_b" / "patches" / patch.name, patch)
    # the report's size is the size on disk (the ledger aside)
    on_disk = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and p.name != "export.json")
    assert report.size == on_disk and report.files == len(site_files(site)) - 1
    # a unit page shows the top-k values in rank order, its source image and the histogram
    page = (site / "run" / "conv_a" / "unit_0005.html").read_text()
    values = run.topk("conv_a")["values"][5]
    positions = [page.index(f"#{r + 1} · {v:.4g}") for r, v in enumerate(values)]
    assert positions == sorted(positions)
    counts = [int(c) for c in re.findall(r"<title>[^<]*: (\d+) images</title>", page)]
    assert sum(counts) == run.stats("conv_a")["hist_counts"][5].sum() and len(counts) >= 1


def test_reexport_rewrites_only_what_changed(small_run, tmp_path):
    site = tmp_path / "site"
    first = export_site([small_run], site)
    assert len(first.written) == first.files and not first.kept
    before = site_files(site)

    again = export_site([small_run], site)
    assert again.written == [] and again.removed == [] and len(again.kept) == first.files
    assert site_files(site) == before                      # not one file touched, the ledger included

    run = open_run(small_run)                               # an optimised image appears for conv_b unit 4
    target = run.maximized("conv_b", 4)
    save_png(Image.fromarray(np.full((16, 16, 3), 200, np.uint8)), target)
    third = export_site([small_run], site)
    assert sorted(third.written) == ["index.html", "run/conv_b/maximize/unit_0004.png", "run/conv_b/sprite.png",
                                     "run/conv_b/unit_0004.html"]
    assert os.path.samefile(site / "run/conv_b/maximize/unit_0004.png", target)

    target.unlink()                                         # and goes away again
    fourth = export_site([small_run], site)
    assert fourth.removed == ["run/conv_b/maximize/unit_0004.png"]
    assert sorted(fourth.written) == ["index.html", "run/conv_b/sprite.png", "run/conv_b/unit_0004.html"]
    assert not (site / "run/conv_b/maximize").exists()

    damaged = ["run/conv_a/unit_0003.html", "run/conv_a/patches/unit_0003_1.png", "run/conv_a/sprite.png"]
    (site / damaged[0]).write_text("edited by hand")               # files changed or lost in the site
    for rel in damaged[1:]:
        (site / rel).unlink()
    fifth = export_site([small_run], site)
    assert sorted(fifth.written) == sorted(damaged) and not fifth.removed

    only = export_site([small_run], site, layers=["conv_a"])     # a layer dropped: its files go
    assert not (site / "run" / "conv_b").exists() and len(only.removed) == fourth.files - only.files


def test_several_runs_layers_by_alias_and_images_browsers_cannot_show(tmp_path):
    """Two runs whose folders share a name get two folders; `layers` picks by alias in the run that
    has it; TIFF dataset images become PNGs (the only images the export encodes)."""
    first = write_run(tmp_path / "a", layers=("conv_a", "conv_b"), units=4, aliases={"conv_b": ["deep"]})
    second = write_run(tmp_path / "b", layers=("conv_c",), units=4, suffix=".tif", aliases={"conv_c": ["deep"]})
    site = tmp_path / "site"
    export_site([first, second], site, layers=["deep"], datasets=[tmp_path])
    assert sorted(p.relative_to(site).as_posix() for p in site.glob("*/*/index.html")) == [
        "run-2/conv_c/index.html", "run/conv_b/index.html"]
    index = (site / "index.html").read_text()
    assert index.index('id="run"') < index.index('id="run-2"')
    converted = sorted((site / "run-2" / "_images").iterdir())
    assert converted and all(p.suffix == ".png" for p in converted)
    run = open_run(second, [tmp_path])
    for path in converted:                       # the picture itself, losslessly
        original = Image.open(run.image_path(int(path.stem)))
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(original.convert("RGB")))
    assert all(p.suffix == ".png" and os.path.samefile(p, open_run(first, [tmp_path]).image_path(int(p.stem)))
               for p in (site / "run" / "_images").iterdir())


def test_size_guard_refuses_before_writing(small_run, tmp_path):
    site = tmp_path / "site"
    planned = export_site([small_run], site, dry_run=True)
    assert not site.exists() and planned.size > 0
    with pytest.raises(VisUsageError, match="max_mb"):
        export_site([small_run], site, max_mb=planned.size / MIB * 0.99)
    assert not site.exists()
    done = export_site([small_run], site, max_mb=planned.size / MIB * 1.01)
    assert done.size == planned.size


HOSTILE = '<img src=x onerror="alert(1)">&\'"'


def test_hostile_names_are_escaped_and_nothing_leaves_the_site(tmp_path):
    run_dir = write_run(tmp_path / "evil", layers=("plain", HOSTILE), units=3,
                        classes=("<script>alert('class')</script>", "a&b"), model=HOSTILE,
                        aliases={"plain": ['"><script>alert(2)</script>']})
    site = tmp_path / "site"
    report = export_site([run_dir], site, title=f"<b>{HOSTILE}</b>", datasets=[tmp_path])
    assert report.skipped == []   # (a layer name that would leave RUN/layers: tests/test_hostile_runs.py)
    pages = list(site.rglob("*.html"))
    assert len(pages) == 1 + 2 * (1 + 3)
    for page in pages:
        text = page.read_text()
        assert "<script>" not in text and "<img src=x" not in text, page
        for tag, attrs in tags(page):
            assert tag in {"html", "head", "meta", "title", "link", "script", "body", "header", "h1", "h2", "h3",
                           "p", "span", "section", "table", "thead", "tbody", "tr", "th", "td", "a", "nav", "img",
                           "div", "figure", "figcaption", "svg", "line", "text", "rect", "code", "style"}, tag
            assert not any(key.startswith("on") for key in attrs), (page, attrs)
            if tag == "script":
                assert attrs["src"].endswith("_site/site.js")
    layer_pages = [p for p in site.glob("run/*/index.html") if "plain" not in p.parts]
    assert len(layer_pages) == 1
    text = html.unescape(layer_pages[0].read_text())
    assert HOSTILE in text and f"<b>{HOSTILE}</b>" in text       # shown as text, literally
    unit = (layer_pages[0].parent / "unit_0000.html").read_text()
    assert "&lt;script&gt;alert(&#x27;class&#x27;)&lt;/script&gt;/img_" in unit or "a&amp;b/img_" in unit


def test_output_folder_must_be_new_empty_or_an_earlier_export(small_run, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(VisUsageError, match="not empty"):
        export_site([small_run], other)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(VisUsageError, match="inside a run"):
        export_site([small_run], small_run / "layers" / "site")


def test_cli_export(small_run, tmp_path, capsys):
    from vistoolbox.cli import main

    site = tmp_path / "site"
    with pytest.raises(SystemExit) as done:
        main(["export", str(small_run), "--out", str(site), "--title", "Tiny"])
    assert done.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{site / 'index.html'}: ") and " files, " in out and "MiB" in out
    assert "run/conv_a" in err                                          # the per-layer size table
    for argv, words in ((["--layers", "conv9"], "--layers: 'conv9' is in none of the runs"),
                        (["--max-mb", "0.0001"], "above --max-mb")):
        with pytest.raises(SystemExit) as failed:
            main(["export", str(small_run), "--out", str(tmp_path / "other"), *argv])
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert failed.value.code == 2 and last.startswith("vis: error: ") and words in last, err
        assert "Traceback" not in err and err.count("error") == 1
    assert not (tmp_path / "other").exists()


def test_dashboard_shows_the_export_command(small_run, tmp_path):
    from vistoolbox.dashboard import units
    from vistoolbox.dashboard.context import make_context

    ctx = make_context([small_run], cache_dir=tmp_path / "cache")
    found = []

    def walk(node) -> None:  # noqa: ANN001
        if getattr(node, "id", None) == "export-command":
            found.append(node.children)
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children]:
            if child is not None and not isinstance(child, str):
                walk(child)

    walk(units.layout(ctx))
    assert found == [export_command([small_run.resolve()], "vis-site")]
    assert found[0] == f"vis export {small_run.resolve()} --out vis-site"
    assert export_command(["my runs/a"], "x") == "vis export 'my runs/a' --out x"
