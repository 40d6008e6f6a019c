"""The run directory's file names are spelled once, in precompute/rundir/layout.py: no string literal outside
`precompute/rundir/` equals one of them (the code refers to layout's constants). Checked on the syntax tree
(string constants only, docstrings and comments excluded)."""
import ast
import pathlib

from precompute.rundir import layout

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("precompute", "dashboard", "benchmarks")   # engine/ sits below rundir: see the last test
FILE_SUFFIXES = (".json", ".jsonl", ".npy", ".parquet", ".safetensors", ".faiss")
# the demo's input files sit in data/, not in a run directory; they share a name with the run's copy
INPUTS = {("precompute/worlds/demo.py", layout.QUERIES)}


def run_dir_names() -> set[str]:
    return {value for name, value in vars(layout).items()
            if name.isupper() and isinstance(value, str) and value.endswith(FILE_SUFFIXES)}


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_names(root: pathlib.Path, names: set[str]) -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith("precompute/rundir/"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skip = docstrings(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
                        and node.value in names and (relative, node.value) not in INPUTS):
                    out.append(f"{relative}:{node.lineno} spells {node.value!r}")
    return out


def test_no_run_dir_file_name_is_spelled_outside_rundir():
    assert spelled_names(ROOT, run_dir_names()) == []


def test_the_scan_sees_a_planted_name(tmp_path):
    planted = tmp_path / "dashboard"
    planted.mkdir()
    (planted / "bad.py").write_text('"""scores.npy in a docstring is fine."""\npath = "scores.npy"\n')
    assert spelled_names(tmp_path, run_dir_names()) == ["dashboard/bad.py:2 spells 'scores.npy'"]


def test_the_engine_writes_the_factor_files_layout_names():
    """The engine (a library below the run directory) names its own factor files; layout must agree."""
    from engine.factors import META_FILE, SINGLE_FILE
    assert (SINGLE_FILE, META_FILE) == (layout.FACTOR_TENSORS, layout.FACTOR_META)
