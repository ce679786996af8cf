"""A run directory is data: opening, serving or merging one never imports model code that its
manifest names. Code runs only when the user names it (or opts in with trust_run_code)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vistoolbox import mine
from vistoolbox.errors import VisUsageError


def evil_spec(tmp_path: Path) -> tuple[str, Path]:
    """A model file that leaves a marker file when it is imported, and its spec."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "import torch.nn as nn\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3))\n")
    return f"{tmp_path / 'evil.py'}:build", marker


def small_dataset(folder: Path, count: int = 4) -> Path:
    from skimage import data

    folder.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"][:count]):
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((72, 64)).save(folder / f"{i}.png")
    return folder


def name_model(run: Path, spec: str) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"] = spec
    (run / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """A complete run and two shard runs mined with deconv views by a small model of our own."""
    from vistoolbox import load_model

    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.py").write_text("import torch.nn as nn\ndef make():\n"
                                  "    return nn.Sequential(nn.Conv2d(3, 4, 5, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3))\n")
    model = load_model(f"{root / 'tiny.py'}:make", "random", input_size=32)
    data = small_dataset(root / "data")
    run = mine(model, data, root / "run", layers=["2"], k=2, batch_size=2, quiet=True)
    shards = [mine(model, data, root / f"shard{i}", layers=["2"], k=2, batch_size=2, shard=(i, 2), views="deconv",
                   quiet=True) for i in range(2)]
    return run, shards


def test_dashboard_never_imports_code_a_run_names(mined, tmp_path):
    from vistoolbox.dashboard import create_app

    spec, marker = evil_spec(tmp_path)
    run = shutil.copytree(mined[0], tmp_path / "run")
    name_model(run, spec)
    app = create_app([run], cache_dir=tmp_path / "cache")       # the model would default to the run's
    ctx = app.vis_context
    assert (ctx.model_name, ctx.weights) == ("vgg16", "hed") and "is not imported" in ctx.notes[0]
    with pytest.raises(VisUsageError, match="never imports code"):
        ctx.model_for(ctx.runs[0])                              # what the Units tab's optimise button calls
    assert not marker.exists()
    # naming the code yourself is trusting it
    trusted = create_app([run], spec, "random", cache_dir=tmp_path / "cache2").vis_context
    assert trusted.model_for(trusted.runs[0]).name == spec and marker.exists()


def test_merge_never_imports_code_the_shards_name(mined, tmp_path, capsys):
    from vistoolbox.cli import main

    spec, marker = evil_spec(tmp_path)
    shards = [shutil.copytree(s, tmp_path / s.name) for s in mined[1]]
    for shard in shards:
        name_model(shard, spec)
    with pytest.raises(SystemExit) as code:
        main(["merge", *map(str, shards), "--out", str(tmp_path / "merged"), "--quiet"])
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.count("\n") == 1 and "--trust-run-code" in err and "--model" in err
    assert not marker.exists()
    # without patches no model is needed at all
    with pytest.raises(SystemExit) as code:
        main(["merge", *map(str, shards), "--out", str(tmp_path / "merged"), "--no-patches", "--quiet"])
    assert code.value.code == 0 and not marker.exists()
