"""Shared test setup: the repository root on sys.path, few threads, the gpu marker, and the session's expensive
worlds made once for every test folder (the tiny world's runs and their counterfactual, the paper's imports)."""
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)


# The fixtures below are defined here, not in a folder's conftest, so that tests/engine, tests/precompute and
# tests/dashboard share one of each per session (a fixture imported into two modules is made twice).

@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Paths of a tiny Llama, a 24-document corpus and 5 queries."""
    from tests.precompute.conftest import corpus_rows, query_rows, write_jsonl
    from tests.tiny_models import make_tiny_llama

    base = tmp_path_factory.mktemp("world")
    return {"model": make_tiny_llama(str(base / "model")),
            "corpus": write_jsonl(base / "corpus.jsonl", corpus_rows()),
            "queries": write_jsonl(base / "queries.jsonl", query_rows()),
            "base": base}


@pytest.fixture(scope="session")
def model_runs(world):
    """A complete ekfac run and a complete identity run of the tiny world, made once per session (tests that
    write into a run work on a copy)."""
    from tests.precompute.conftest import run_args, run_cli

    paths = {}
    for strategy in ("ekfac", "identity"):
        out = world["base"] / f"validate-{strategy}"
        if not (out / "manifest.json").exists():
            run_cli(*run_args(world, out, "--strategy", strategy))
        paths[strategy] = out
    return paths


COUNTERFACTUAL_FLAGS = ["--sets", "4", "--set-size", "5", "--anchor-docs", "8", "--max-iterations", "3000",
                        "--epsilon", "1e-6", "--linearity-sets", "1"]


def without_counterfactual(source, target):
    """A copy of a run without its counterfactual (responses, LDS tables) and lock."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock", "counterfactual"))
    for name in ("counterfactual.parquet", "lds_queries.parquet", "lds_summary.parquet"):
        path = target / "analysis" / name
        if path.exists():
            path.unlink()
    return target


@pytest.fixture(scope="session")
def counterfactual_run(model_runs, tmp_path_factory):
    """(run, CompletedProcess): a copy of the tiny ekfac run with a 4-set counterfactual (COUNTERFACTUAL_FLAGS; the
    identity run as --strategy-runs; methods ekfac, ekfac/‖g_d‖, identity, identity/‖g_d‖, BM25), computed once per
    session: the PBRF solves take ≈ 2 minutes here. Never written to: tests that write work on a copy."""
    from tests.precompute.conftest import run_cli

    out = without_counterfactual(model_runs["ekfac"], tmp_path_factory.mktemp("counterfactual") / "run")
    result = run_cli("counterfactual", "--run", out, *COUNTERFACTUAL_FLAGS, "--strategy-runs", model_runs["identity"])
    return out, result


@pytest.fixture(scope="session")
def real_imports(tmp_path_factory):
    """The paper's published 7B and 35B files imported once per session as runs `ruis-7b` and `ruis-35b`
    (tests needing them skip where ../shared/ruis is absent)."""
    from precompute.published.importer import import_published
    from tests.published_files import REAL_FILES

    folder = tmp_path_factory.mktemp("real")
    return {size: import_published(str(REAL_FILES[size]), str(folder / f"ruis-{size.lower()}"), progress=False).path
            for size in REAL_FILES}
