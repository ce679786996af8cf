"""`vis --help` and every `vis CMD --help` answer without importing the heavy libraries, and stay complete."""
from __future__ import annotations

import json
import subprocess
import sys

import click

from vistoolbox.cli import vis

HEAVY = ("torch", "torchvision", "dash", "plotly", "numpy", "PIL", "skimage", "ray")

PROBE = f"""
import json, sys
from click.testing import CliRunner
from vistoolbox.cli import vis
runner = CliRunner()
helps = {{"": runner.invoke(vis, ["--help"]).output}}
for name in vis.list_commands(None):
    result = runner.invoke(vis, [name, "--help"])
    assert result.exit_code == 0, (name, result.output)
    helps[name] = result.output
print(json.dumps({{"helps": helps, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def probe() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_help_imports_no_heavy_library():
    assert probe()["loaded"] == []


def test_vis_help_command_starts_without_torch():
    code = "import sys; from vistoolbox.cli import main; sys.argv = ['vis', '--help']\ntry:\n    main()\n" \
           "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "Commands:" in out.stdout and out.stdout.strip().endswith("False")


def test_every_help_lists_every_option_of_its_command():
    helps = probe()["helps"]
    assert set(helps) == {"", *vis.list_commands(None)}
    for name in vis.list_commands(None):
        command = vis.get_command(None, name)
        assert name in helps[""]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(flag in helps[name] for flag in param.opts), (name, param.opts)
