"""The package's shape: imports only point down the pipeline, no cycles, every module says what it exports.

Levels (a module may import its own level's siblings inside its package, or anything below):
<<<<<<< HEAD
ground (errors, files, images, limits, result, rundir, parallel, samples) → models/weights/small_cnn → features →
the pipelines (mining, actmax, style, attribution, training; they never import each other) → apps (cli, demo,
dashboard), which may also use the public API re-exported by ``vistoolbox/__init__.py``.
=======
ground (errors, files, images, limits, result, rundir, runfiles, parallel, samples) → models/weights → features → the three
pipelines (mining, actmax, style; they never import each other) → apps (cli, demo, dashboard), which
may also use the public API re-exported by ``vistoolbox/__init__.py``.
>>>>>>> gate
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vistoolbox"
LEVELS = {"_version": 0, "errors": 0, "files": 0, "images": 0, "limits": 0, "result": 0, "rundir": 0, "runfiles": 0, "parallel": 0,
          "samples": 0,
          "weights": 1, "models": 1, "small_cnn": 1, "features": 2, "mining": 3, "actmax": 3, "style": 3,
          "attribution": 3, "training": 3, "cli": 4, "demo": 4, "dashboard": 4, "export": 4}
PIPELINES = {"mining", "actmax", "style", "attribution", "training"}


def modules() -> dict[str, Path]:
    """Dotted name → file of every module of the installed package (the dashboard's from its folder)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "dashboard").glob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[0] == "dashboard":
            parts = ["vistoolbox", *parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports (module level and inside functions)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    stub = path.with_suffix(".pyi")  # a lazy package lists its imports in its stub (lazy_loader)
    source = path.read_text() + ("\n" + stub.read_text() if stub.exists() else "")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "vistoolbox"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "vistoolbox":
                continue
            for alias in node.names:  # `from . import jobs` imports the submodule
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_level():
    assert {top(m) for m in modules()} - {""} <= set(LEVELS)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_imports_point_down_and_pipelines_stay_apart():
    bad = []
    for name, targets in graph().items():
        if name == "vistoolbox":  # the package's own __init__ re-exports the public API
            continue
        for target in targets:
            if target == "vistoolbox":  # the public API: what the apps (CLI, demo, dashboard) are built on
                if LEVELS[top(name)] < LEVELS["cli"]:
                    bad.append((name, target, "library code imports the package __init__ (upward)"))
                continue
            src, dst = top(name), top(target)
            if src == dst:
                if name.count(".") > 1 and target == name.rpartition(".")[0]:
                    bad.append((name, target, "imports its own package __init__ (upward)"))
                continue
            if LEVELS[dst] > LEVELS[src]:
                bad.append((name, target, "upward"))
            elif src in PIPELINES and dst in PIPELINES:
                bad.append((name, target, "one pipeline imports another"))
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_declares_all(name):
    tree = ast.parse(modules()[name].read_text())
    def names(target: ast.expr) -> list[str]:  # `__all__ = …` or `__getattr__, __dir__, __all__ = …`
        return [getattr(t, "id", "") for t in getattr(target, "elts", [target])]

    assert any(isinstance(node, ast.Assign) and any("__all__" in names(t) for t in node.targets)
               for node in tree.body), f"{name} has no __all__"


def test_the_dashboard_installs_inside_the_library_namespace():
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    # every package folder is installed, the dashboard's through the package-dir mapping (no symlink)
    assert sorted(config["packages"]) == sorted(find_packages(str(ROOT), include=["vistoolbox*"])
                                                + ["vistoolbox.dashboard"])
    assert config["package-dir"] == {"vistoolbox.dashboard": "dashboard"}
    assert not (PACKAGE / "dashboard").exists() and not (PACKAGE / "dashboard").is_symlink()
    import vistoolbox.dashboard as dashboard

    assert Path(dashboard.__file__).resolve().parent == (ROOT / "dashboard").resolve()
