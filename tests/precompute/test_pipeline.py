"""End to end on a tiny model: a complete run directory with consistent files; resume; no silent overwrite;
torchrun with 2 CPU processes equals one process."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from precompute import rundir
from tests.precompute.conftest import ROOT, SMALL_FLAGS, run_args, run_cli

ANALYSIS_TABLES = ["top_docs", "correlations", "task_correlations", "magnitude", "magnitude_by_task", "power_law",
                   "answer_occurrence", "answer_rates", "source_multipliers", "layer_share"]


@pytest.fixture(scope="module")
def complete_run(world):
    out = world["base"] / "run-complete"
    if not rundir.RunDir(str(out)).is_complete():
        result = run_cli(*run_args(world, out, "--fisher", "empirical"))
        assert "truncated" in result.stderr      # documents longer than --max-length 24: a warning, not an error
        assert result.stderr.count("were truncated") == 1
    return out


def test_run_directory_is_complete_and_consistent(complete_run, world):
    out = str(complete_run)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["status"] == "complete" and manifest["synthetic"] is False
    assert manifest["counts"]["documents"] == 24 and manifest["counts"]["queries"] == 5
    assert manifest["query_rank"] == 4 and manifest["world_size"] == 1 and manifest["device"] == "cpu"
    assert manifest["counts"]["truncated_documents"] > 0
    assert set(manifest["timings"]) == {"fit", "score", "token_scores", "analyze"}
    assert not os.path.exists(os.path.join(out, "chunks"))
    for name in rundir.SCORE_FILES + ("factors/factors.safetensors", "factors/meta.json", "analysis/findings.json"):
        assert os.path.exists(os.path.join(out, name)), name
    for name in ANALYSIS_TABLES:
        assert len(pd.read_parquet(os.path.join(out, "analysis", f"{name}.parquet"))) > 0, name

    scores = np.load(os.path.join(out, "scores.npy"), allow_pickle=False)
    layers = np.load(os.path.join(out, "layer_scores.npy"), allow_pickle=False)
    norms = np.load(os.path.join(out, "doc_grad_norms.npy"), allow_pickle=False)
    normalized = np.load(os.path.join(out, "normalized_scores.npy"), allow_pickle=False)
    layer_names = json.load(open(os.path.join(out, "layers.json")))
    assert scores.shape == (5, 24) and scores.dtype == np.float32
    assert layers.shape == (5, len(layer_names), 24) and len(layer_names) == len(manifest["layers"])
    np.testing.assert_allclose(layers.sum(axis=1), scores, rtol=1e-5, atol=1e-5 * np.abs(scores).max())
    assert (norms > 0).all()
    np.testing.assert_allclose(normalized, scores / norms, rtol=1e-6)
    assert np.isfinite(scores).all() and np.abs(scores).max() > 0

    queries = [json.loads(line) for line in open(os.path.join(out, "queries.jsonl"))]
    assert [q["id"] for q in queries] == [f"q{i}" for i in range(5)]
    assert all(q["nats"] > 0 and q["n_completion_tokens"] > 0 and "extra" in q for q in queries)
    documents = pd.read_parquet(os.path.join(out, "documents.parquet"))
    assert list(documents.columns) == ["id", "source", "text", "n_tokens", "truncated"]
    assert documents.id.tolist() == [f"doc-{i:03d}" for i in range(24)] and documents.n_tokens.max() <= 24

    tokens = pd.read_parquet(os.path.join(out, "token_scores.parquet"))
    assert set(tokens.side) == {"top", "bottom"} and set(tokens["rank"]) == {1, 2}
    column = {doc_id: i for i, doc_id in enumerate(documents.id)}
    for (query_id, doc_id), group in tokens.groupby(["query_id", "doc_id"]):
        expected = scores[int(query_id[1:]), column[doc_id]]
        assert group.score.sum() == pytest.approx(expected, rel=1e-3, abs=1e-4 * np.abs(scores).max())
        assert len(group) == documents.n_tokens[column[doc_id]]
    top = tokens[(tokens.query_id == "q0") & (tokens.side == "top") & (tokens["rank"] == 1)].doc_id.iloc[0]
    assert column[top] == int(np.argmax(scores[0]))


def test_resume_after_kill_gives_identical_scores(complete_run, world, tmp_path):
    out = tmp_path / "resumed"
    args = run_args(world, out, "--fisher", "empirical")
    killed = run_cli(*args, env={"PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS": "1"}, check=False)
    assert killed.returncode == 75, killed.stderr
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["status"] == "scoring"
    chunks = [n for n in os.listdir(out / "chunks") if n.endswith(".npz")]
    assert len(chunks) == 1
    with np.load(out / "chunks" / chunks[0]) as chunk:     # per-document lengths travel with the scores
        assert {"n_tokens", "truncated"} <= set(chunk.files) and len(chunk["n_tokens"]) == chunk["scores"].shape[1]
    assert not os.path.exists(out / "scores.npy")
    resumed = run_cli(*args)
    assert resumed.stderr.count("were truncated") == 1
    assert json.load(open(out / "manifest.json"))["status"] == "complete"
    for name in ("scores.npy", "layer_scores.npy", "doc_grad_norms.npy"):
        np.testing.assert_array_equal(np.load(out / name), np.load(complete_run / name), err_msg=name)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "documents.parquet"),
                                  pd.read_parquet(complete_run / "documents.parquet"))
    assert json.load(open(out / "manifest.json"))["counts"] == json.load(open(complete_run / "manifest.json"))["counts"]


def test_complete_run_is_not_overwritten(complete_run, world, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(complete_run, out)
    before = (out / "scores.npy").read_bytes()
    refused = run_cli(*run_args(world, out, "--fisher", "empirical"), check=False)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert (out / "scores.npy").read_bytes() == before
    fit_refused = run_cli("fit", "--model", world["model"], "--corpus", world["corpus"], "--out", out, check=False)
    assert fit_refused.returncode == 2
    run_cli(*run_args(world, out, "--fisher", "empirical", "--overwrite"))
    assert json.load(open(out / "manifest.json"))["status"] == "complete"
    np.testing.assert_array_equal(np.load(out / "scores.npy"), np.load(complete_run / "scores.npy"))


def test_fit_then_score_equals_run(complete_run, world, tmp_path):
    out = tmp_path / "two-step"
    common = ["--model", world["model"], "--corpus", world["corpus"], "--out", out, *SMALL_FLAGS[:2],
              *SMALL_FLAGS[4:6], "--factor-docs", "16", "--fisher", "empirical"]
    run_cli("fit", *common)
    assert json.load(open(out / "manifest.json"))["status"] == "fitted"
    run_cli("score", *common, "--queries", world["queries"], "--chunk-docs", "6", "--token-topk", "2",
            "--query-rank", "4")
    np.testing.assert_array_equal(np.load(out / "scores.npy"), np.load(complete_run / "scores.npy"))
    run_cli("analyze", "--out", out)
    assert json.load(open(out / "manifest.json"))["status"] == "complete"


def run_torchrun(world, out, *extra):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "precompute", "--quiet",
                             *map(str, run_args(world, out, *extra))],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["status"] == "complete" and manifest["world_size"] == 2


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(complete_run, world, tmp_path):
    out = tmp_path / "distributed"
    run_torchrun(world, out, "--fisher", "empirical")
    single = np.load(complete_run / "scores.npy")
    np.testing.assert_allclose(np.load(out / "scores.npy"), single, rtol=1e-4, atol=1e-5 * np.abs(single).max())
    pd.testing.assert_frame_equal(pd.read_parquet(out / "documents.parquet"),     # lengths from both ranks' chunks
                                  pd.read_parquet(complete_run / "documents.parquet"))
    assert json.load(open(out / "manifest.json"))["counts"] == json.load(open(complete_run / "manifest.json"))["counts"]


@pytest.mark.slow
def test_torchrun_sampled_fisher_equals_one_process(world, tmp_path):
    """Sampled labels are seeded per document (not per rank or batch), so sharding leaves the factors alike."""
    single, distributed = tmp_path / "single", tmp_path / "distributed"
    run_cli(*run_args(world, single, "--fisher", "sampled"))
    run_torchrun(world, distributed, "--fisher", "sampled")
    expected = np.load(single / "scores.npy")
    np.testing.assert_allclose(np.load(distributed / "scores.npy"), expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max())
