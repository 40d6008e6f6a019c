"""The floors of the house, checked by walking every import (ast, no execution): data flows inputs → engine →
run directory → analysis → dashboard, so

- `precompute/rundir/` (the run-directory contract) imports nothing else of the project;
- `precompute/analysis/` imports only itself and rundir;
- `dashboard/` imports only itself, rundir and analysis (never torch, the engine or the torch side of precompute;
  the Ask worker is a separate process);
- `engine/` imports nothing of precompute or the dashboard;
- the rest of `precompute/` (the rooms: pipeline, index, validation, ...) never imports the dashboard, and no
  product package imports `benchmarks/` (the command table names benchmark commands as strings, imported on use).
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALLOWED = {
    "precompute.rundir": {"precompute.rundir"},
    "precompute.analysis": {"precompute.analysis", "precompute.rundir"},
    "dashboard": {"dashboard", "precompute.rundir", "precompute.analysis"},
    "engine": {"engine"},
    "precompute": {"precompute", "precompute.rundir", "precompute.analysis", "engine"},
}
PROJECT = ("engine", "precompute", "dashboard", "data", "benchmarks")


def floor(module: str) -> str:
    """engine | precompute | precompute.rundir | precompute.analysis | dashboard | data (or '' outside)."""
    parts = module.split(".")
    if parts[0] == "precompute" and len(parts) > 1 and parts[1] in ("rundir", "analysis"):
        return f"precompute.{parts[1]}"
    return parts[0] if parts[0] in PROJECT else ""


def imported(path: pathlib.Path) -> list[str]:
    """Absolute module names a file imports (`from precompute import rundir` counts as precompute.rundir)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def violations(package: str, root: pathlib.Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        source = floor(".".join(path.relative_to(root).with_suffix("").parts))
        for name in imported(path):
            target = floor(name)
            if target and source in ALLOWED and target not in ALLOWED[source]:
                out.append(f"{path.relative_to(root)} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_crosses_a_floor_the_wrong_way(package):
    assert violations(package) == []


def test_the_walker_sees_a_planted_violation(tmp_path):
    planted = tmp_path / "precompute" / "rundir"
    planted.mkdir(parents=True)
    (planted / "bad.py").write_text("from precompute.pipeline import settings\nimport engine.model\n")
    assert violations("precompute.rundir", tmp_path) == ["precompute/rundir/bad.py imports precompute.pipeline.settings",
                                               "precompute/rundir/bad.py imports engine.model"]
