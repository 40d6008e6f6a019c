"""`index` and `ask` on a complete tiny run: the index against the run's own scores, resume, bad input, worker.

What is stated and checked:
- at full rank (lowrank) or full dimension (eigen, searched with faiss IndexFlatIP) the index reproduces
  scores.npy, and `ask` for a run query returns that query's top and bottom documents with their scores; the
  exact per-token split of the first ones sums to them;
- at the default rank 4 (float16) the index ranks like the exact scores (median Pearson over the queries
  ≥ 0.8 on this random tiny model; the demo run's figures are in BENCHMARKS.md), also through IVF-PQ candidates;
- a build killed after one chunk leaves no complete-looking index and resumes to the same vectors;
- no index, an unfinished or stale index (factors or model changed, by hashes), an empty or too long prompt:
  one clear line, exit code 2;
- the ask worker holds no network socket, answers, survives a bad question and exits with its parent.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from precompute.index.store import index_path
from tests.precompute.conftest import ROOT, run_args, run_cli

INDEX_FLAGS = ["--chunk-docs", "6", "--batch-size", "4"]


@pytest.fixture(scope="module")
def run(world):
    """A complete tiny run (the pipeline test's run when it was built already), copied for these tests."""
    shared = world["base"] / "run-complete"
    if not (shared / "manifest.json").exists() or json.load(open(shared / "manifest.json"))["status"] != "complete":
        run_cli(*run_args(world, shared, "--fisher", "empirical"))
    mine = world["base"] / "run-ask"
    if not mine.exists():
        shutil.copytree(shared, mine, ignore=shutil.ignore_patterns(".lock", "index"))
    return mine


def full_dim(run) -> int:
    meta = json.load(open(run / "factors" / "meta.json"))
    return sum(int(np.prod(shape)) for shape in meta["shapes"].values())


def estimates(run, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """(the index's estimates, scores.npy) for the run's queries at `rows` (all by default)."""
    from precompute.index.ask import Asker

    asker = Asker(str(run), device="cpu")
    queries = [json.loads(line) for line in open(run / "queries.jsonl")]
    rows = range(len(queries)) if rows is None else rows
    found = [asker.index.estimate(asker.preconditioned(queries[r]["prompt"], queries[r]["completion"])[0])[0]
             for r in rows]
    return np.stack(found), np.load(run / "scores.npy")[list(rows)]


@pytest.fixture(scope="module")
def full_index(run):
    run_cli("index", "--run", run, "--rank", 32, "--query-factor-rank", "full", "--dtype", "float32", *INDEX_FLAGS)
    return run


def test_full_rank_index_reproduces_the_scores(full_index, tmp_path):
    manifest = json.load(open(index_path(str(full_index), "manifest.json")))
    assert manifest["status"] == "complete" and manifest["method"] == "lowrank" and manifest["rank"] == 32
    assert manifest["check"]["pearson_median"] > 0.9999 and manifest["check"]["top_overlap_median"] == 1.0
    assert not os.path.exists(index_path(str(full_index), "chunks"))
    found, scores = estimates(full_index)
    np.testing.assert_allclose(found, scores, atol=1e-4 * np.abs(scores).max())

    eigen = tmp_path / "eigen"                       # the faiss path: every eigen-direction, IndexFlatIP
    shutil.copytree(full_index, eigen, ignore=shutil.ignore_patterns(".lock", "index"))
    run_cli("index", "--run", eigen, "--method", "eigen", "--dim", full_dim(eigen), "--dtype", "float32",
            *INDEX_FLAGS)
    assert json.load(open(index_path(str(eigen), "manifest.json")))["search"]["kind"] == "flat"
    found, scores = estimates(eigen, rows=[0, 3])
    np.testing.assert_allclose(found, scores, atol=1e-4 * np.abs(scores).max())


def test_ask_a_run_query_returns_its_documents(full_index, tmp_path):
    from precompute.index.ask import Asker

    queries = [json.loads(line) for line in open(full_index / "queries.jsonl")]
    scores = np.load(full_index / "scores.npy")
    asker = Asker(str(full_index), device="cpu")
    for row in (0, 2):
        result = asker.ask(queries[row]["prompt"], queries[row]["completion"], top=5, token_docs=2)
        assert result["nats"] == pytest.approx(queries[row]["nats"], rel=1e-4)
        order = np.argsort(-scores[row], kind="stable")
        for side, expected in (("top", order[:5]), ("bottom", order[::-1][:5])):
            got = [entry["doc_index"] for entry in result[side]]
            np.testing.assert_allclose([e["score"] for e in result[side]], scores[row, got],
                                       atol=1e-4 * np.abs(scores).max())
            assert set(got) == set(expected.tolist()) or np.allclose(np.sort(scores[row, got]),
                                                                     np.sort(scores[row, expected]), rtol=1e-5)
            for entry in result[side][:2]:                      # re-run exactly: token split sums to the score
                assert entry["exact_score"] == pytest.approx(scores[row, entry["doc_index"]], rel=1e-3,
                                                             abs=1e-4 * np.abs(scores).max())
                assert sum(entry["token_scores"]) == pytest.approx(entry["exact_score"], rel=1e-5)
            assert all(entry["tokens"] is None for entry in result[side][2:])
    out = tmp_path / "answer.json"
    cli = run_cli("ask", "--run", full_index, "--prompt", queries[0]["prompt"], "--completion",
                  queries[0]["completion"], "--top", 3, "--token-docs", 1, "--json", out)
    assert "most positive" in cli.stdout and json.load(open(out))["top"][0]["doc_index"] == int(np.argmax(scores[0]))


def test_default_rank_ranks_like_the_exact_scores_and_resumes(run, tmp_path):
    small = tmp_path / "small"
    shutil.copytree(run, small, ignore=shutil.ignore_patterns(".lock", "index"))
    run_cli("index", "--run", small, "--search", "ivfpq", "--keys-dim", 96, *INDEX_FLAGS)
    manifest = json.load(open(index_path(str(small), "manifest.json")))
    assert manifest["dtype"] == "float16" and manifest["bytes_per_document"] == 2 * (manifest["dim"] + 96)
    found, scores = estimates(small)
    pearson = [np.corrcoef(a, b)[0, 1] for a, b in zip(found, scores)]
    assert np.median(pearson) >= 0.8, pearson
    assert manifest["check"]["pearson_median"] == pytest.approx(np.median(pearson), abs=0.05)
    assert manifest["check"]["search_recall_median"] >= 0.5     # ivfpq candidates hold the estimate's top

    killed = run_cli("index", "--run", small, "--overwrite", *INDEX_FLAGS,
                     env={"PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS": "1"}, check=False)
    assert killed.returncode == 75, killed.stderr
    assert json.load(open(index_path(str(small), "manifest.json")))["status"] == "building"
    refused = run_cli("ask", "--run", small, "--prompt", "x", "--completion", " y", check=False)
    assert refused.returncode == 2 and "index is not complete" in refused.stderr
    before = np.load(index_path(str(small), "chunks", "chunk_0000000000_0000000006.npz"))["vectors"]
    run_cli("index", "--run", small, *INDEX_FLAGS)
    resumed = np.load(index_path(str(small), "vectors.npy"))
    np.testing.assert_array_equal(resumed[:6], before)
    again, _ = estimates(small)
    np.testing.assert_allclose(again, found, rtol=1e-5, atol=1e-5 * np.abs(found).max())


def error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_questions_and_stale_or_missing_index_are_one_line_errors(full_index, world, tmp_path):
    from safetensors.torch import load_file, save_file

    from precompute.index.ask import Asker
    from precompute.rundir.errors import UserInputError

    no_index = tmp_path / "no-index"
    shutil.copytree(full_index, no_index, ignore=shutil.ignore_patterns(".lock", "index"))
    assert "has no index" in error_line(run_cli("ask", "--run", no_index, "--prompt", "a", "--completion", " b",
                                                check=False))
    asker = Asker(str(full_index), device="cpu")
    for prompt, completion, generate, message in (("  ", " b", False, "prompt is empty"),
                                                  ("word " * 40, " b", False, "max_length of 24"),
                                                  ("a", None, False, "give a completion"),
                                                  ("a", " b", True, "not both")):
        with pytest.raises(UserInputError, match=message):
            asker.ask(prompt, completion, generate)
    generated = asker.ask("The capital of", generate=True, top=2, token_docs=0)
    room = 24 - asker.count_tokens("The capital of", special=True)        # the run's max_length is 24
    assert generated["generated"] and generated["generation"]["cap"] == room
    assert generated["generation"]["ended"] in ("eos", "blank line", "cap")
    assert generated["generation"]["note"].startswith("the model's greedy completion, ended at")

    stale = tmp_path / "stale"
    shutil.copytree(full_index, stale, ignore=shutil.ignore_patterns(".lock"))
    tensors = load_file(str(stale / "factors" / "factors.safetensors"))
    save_file({k: v * 1.01 for k, v in tensors.items()}, str(stale / "factors" / "factors.safetensors"))
    with pytest.raises(UserInputError, match="the run's factors changed"):
        Asker(str(stale), device="cpu")
    model = tmp_path / "model"
    shutil.copytree(world["model"], model)
    with open(model / "config.json", "a") as handle:
        handle.write("\n")
    with pytest.raises(UserInputError, match="the model changed"):
        Asker(str(full_index), model=str(model), device="cpu")


def worker_sockets(pid: int) -> list[str]:
    """The socket inodes a process holds open."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.append(target)
    return found


PARENT = """
import sys, time
from dashboard.ask_client import AskWorker
worker = AskWorker(sys.argv[1])
worker.start()
print(worker.pid, flush=True)
bad = None
try:
    worker.ask("", " b")
except Exception as error:
    bad = str(error)
result = worker.ask(sys.argv[2], sys.argv[3], top=3, token_docs=1)
print(repr(bad), flush=True)
print(result["top"][0]["doc_index"], flush=True)
print("torch" in sys.modules, flush=True)
time.sleep(600)
"""


def test_worker_uses_only_pipes_answers_and_exits_with_its_parent(full_index):
    queries = [json.loads(line) for line in open(full_index / "queries.jsonl")]
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(full_index), queries[0]["prompt"],
                               queries[0]["completion"]], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
    try:
        worker = int(parent.stdout.readline())
        assert worker_sockets(worker) == []            # pipes only: nothing to connect to, from anywhere
        assert "prompt is empty" in parent.stdout.readline()
        assert int(parent.stdout.readline()) == int(np.argmax(np.load(full_index / "scores.npy")[0]))
        assert parent.stdout.readline().strip() == "False"   # the dashboard side never imports torch
        assert worker_sockets(worker) == []
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        with open(f"/proc/{worker}/stat") as handle:
            if handle.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.2)
    gone = not os.path.exists(f"/proc/{worker}") or open(f"/proc/{worker}/stat").read().split(") ")[1][0] == "Z"
    assert gone, "the ask worker outlived its parent"
