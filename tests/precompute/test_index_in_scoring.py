"""`score --index` / `run --index`: the ask index built in the scoring pass, not in a second pass.

What is stated and checked (tiny world):
- `score --index` writes the same scores.npy as plain `score`, and the same RUN/index/ as a separate
  `python -m precompute index` over that run with the same options and batches: stored vectors, compressor and
  manifest (hashes, dims, self-check; all but timings and date);
- `ask` on it answers with the documents and estimates of the separately built index, and its exact re-run
  scores equal scores.npy;
- `run --index` killed after one score chunk leaves an index marked building, and resumes to the same index;
- under torchrun (two ranks sharing the score chunks) `run --index` gives the index of one process;
- a bad --index-* option is one clear line, exit code 2.
"""
import json
import shutil

import numpy as np
import pytest

from precompute.index.store import index_path
from tests.precompute.conftest import run_args, run_cli
from tests.precompute.test_pipeline import run_torchrun

BATCHES = ["--batch-size", "4", "--chunk-docs", "6"]          # as SMALL_FLAGS: the same batches in both passes


def score_args(world, out, *extra) -> list:
    return ["score", *run_args(world, out, "--fisher", "empirical", *extra)[1:]]


def copy_run(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock", "index"))
    return target


@pytest.fixture(scope="module")
def runs(world):
    """(plain score, score --index, plain score + separate `index`), on one fit."""
    base = world["base"] / "index-in-scoring"
    fitted = base / "fitted"
    run_cli("fit", "--model", world["model"], "--corpus", world["corpus"], "--out", fitted, "--batch-size", "4",
            "--max-length", "24", "--factor-docs", "16", "--fisher", "empirical")
    plain, indexed = copy_run(fitted, base / "plain"), copy_run(fitted, base / "indexed")
    run_cli(*score_args(world, plain))
    run_cli(*score_args(world, indexed, "--index"))
    separate = copy_run(plain, base / "separate")
    run_cli("index", "--run", separate, *BATCHES)
    return plain, indexed, separate


def index_manifest(run) -> dict:
    return json.load(open(index_path(str(run), "manifest.json")))


def test_score_index_equals_score_then_index(runs):
    plain, indexed, separate = runs
    np.testing.assert_array_equal(np.load(indexed / "scores.npy"), np.load(plain / "scores.npy"))
    built, expected = index_manifest(indexed), index_manifest(separate)
    assert built["status"] == "complete" and built["method"] == "lowrank" and built["rank"] == 4
    assert built["dtype"] == "float16" and built["n_documents"] == 24
    assert "score_and_compress" in built["timings"] and "compress" in expected["timings"]
    differ = {"timings", "created"}
    assert {k: v for k, v in built.items() if k not in differ} == {k: v for k, v in expected.items() if k not in differ}
    vectors = np.load(index_path(str(indexed), "vectors.npy")).astype(np.float32)
    reference = np.load(index_path(str(separate), "vectors.npy")).astype(np.float32)
    assert vectors.shape == reference.shape == (24, built["dim"]) and np.abs(reference).max() > 0
    np.testing.assert_array_equal(vectors, reference)                  # bit-identical: the same a, g, batches
    compressors = [open(index_path(str(run), "compressor.safetensors"), "rb").read() for run in (indexed, separate)]
    assert compressors[0] == compressors[1]
    assert not (indexed / "chunks").exists() and not (indexed / "index" / "chunks").exists()
    assert json.load(open(indexed / "manifest.json"))["index"]["rank"] == 4     # the options, in the run manifest


def test_ask_on_a_score_index_run(runs):
    from precompute.index.ask import Asker

    plain, indexed, separate = runs
    queries = [json.loads(line) for line in open(indexed / "queries.jsonl")]
    scores = np.load(indexed / "scores.npy")
    mine, theirs = Asker(str(indexed), device="cpu"), Asker(str(separate), device="cpu")
    for row in (0, 2):
        got = mine.ask(queries[row]["prompt"], queries[row]["completion"], top=5, token_docs=2)
        want = theirs.ask(queries[row]["prompt"], queries[row]["completion"], top=5, token_docs=2)
        for side in ("top", "bottom"):
            assert [e["doc_index"] for e in got[side]] == [e["doc_index"] for e in want[side]]
            np.testing.assert_allclose([e["score"] for e in got[side]], [e["score"] for e in want[side]],
                                       rtol=1e-4, atol=1e-6 * np.abs(scores).max())
            for entry in got[side][:2]:
                assert entry["exact_score"] == pytest.approx(scores[row, entry["doc_index"]], rel=1e-3,
                                                             abs=1e-4 * np.abs(scores).max())


def test_run_index_resumes_after_a_kill(runs, world, tmp_path):
    _, indexed, _ = runs
    out = tmp_path / "resumed"
    killed = run_cli(*run_args(world, out, "--fisher", "empirical", "--index"),
                     env={"PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS": "1"}, check=False)
    assert killed.returncode == 75, killed.stderr
    assert index_manifest(out)["status"] == "building"
    chunk = np.load(out / "chunks" / "chunk_0000000000_0000000006.npz")
    assert chunk["vectors"].dtype == np.float16 and chunk["vectors"].shape[0] == 6
    refused = run_cli("ask", "--run", out, "--prompt", "x", "--completion", " y", check=False)
    assert refused.returncode == 2
    run_cli(*run_args(world, out, "--fisher", "empirical", "--index"))
    resumed = np.load(index_path(str(out), "vectors.npy"))
    np.testing.assert_array_equal(resumed[:6], chunk["vectors"])
    reference = np.load(index_path(str(indexed), "vectors.npy")).astype(np.float32)
    np.testing.assert_array_equal(resumed.astype(np.float32), reference)
    np.testing.assert_array_equal(np.load(out / "scores.npy"), np.load(indexed / "scores.npy"))
    assert index_manifest(out)["status"] == "complete"


def all_estimates(run) -> np.ndarray:
    """[Q, D] the index's estimates for the run's own queries."""
    from precompute.index.ask import Asker

    asker = Asker(str(run), device="cpu")
    queries = [json.loads(line) for line in open(run / "queries.jsonl")]
    return np.concatenate([asker.index.estimate(asker.preconditioned(q["prompt"], q["completion"])[0])
                           for q in queries])


@pytest.mark.slow
def test_torchrun_run_index_equals_one_process(runs, world, tmp_path):
    _, indexed, _ = runs
    out = tmp_path / "distributed"
    run_torchrun(world, out, "--fisher", "empirical", "--index")      # factors all-reduced: equal up to rounding
    manifest = index_manifest(out)
    assert manifest["status"] == "complete" and manifest["world_size"] == 2 and manifest["n_documents"] == 24
    expected = all_estimates(indexed)
    np.testing.assert_allclose(all_estimates(out), expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_bad_index_option_is_one_line(world, tmp_path):
    result = run_cli(*run_args(world, tmp_path / "bad", "--index", "--index-method", "eigen", "--index-search",
                               "exact"), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        "error: --index-search exact is for --index-method lowrank; eigen / gaussian search with faiss (flat, ivfpq)"]
