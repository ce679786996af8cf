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
