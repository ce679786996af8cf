"""The README is the contract: CI must run its test command verbatim."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.startswith("#")]
    return lines


def test_two_setup_commands_and_ci_runs_the_test_command():
    commands = readme_commands()
    assert len(commands) >= 2
    main_job, test_command = commands[0], commands[1]
    assert "pip install" in main_job and "vis " in main_job
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci]


def test_the_python_api_block_runs(tmp_path, monkeypatch):
    """The README's ten-line API block, run as written but on a random AlexNet and two small photos."""
    from skimage import data
    from PIL import Image

    block = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)[0]
    assert len([l for l in block.splitlines() if l.strip()]) <= 10
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(photos / f"{name}.png")
    Image.fromarray(data.coffee()).save(tmp_path / "photo.jpg")
    code = (block.replace('load_model("vgg16", "hed")', 'load_model("alexnet", "random")')
            .replace('"conv5_3"', '"conv5"').replace('["conv4", "conv5"]', '["conv4", "conv5"], quiet=True'))
    code = code.replace('maximize(model, "conv4:12")', 'maximize(model, "conv4:12", steps=8)')
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["feats"].shape[1] == 256 and scope["run"] is not None
    assert (tmp_path / "unit12.png").stat().st_size > 0 and (tmp_path / "runs/vgg/manifest.json").exists()
