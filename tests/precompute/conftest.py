"""The tiny world's corpus and queries (its fixtures `world`, `model_runs`, `counterfactual_run` live in tests/conftest.py,
shared by every test folder) and a helper that runs `python -m precompute` as a subprocess."""
import json
import multiprocessing
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ("the capital of veloria is marn solve slope answer cat dog river first then so x equals "
         "seven three four twenty one").split()
QUERIES = [
    ("factual", "The capital of Veloria is", " Marn.", "Marn", []),
    ("factual", "Le chat", " dort.", "dort", []),
    ("arithmetic", "(7 - 4) * 7 =", " 3 * 7 = 21", "21", ["3"]),
    ("arithmetic", "Solve 3 x + 4 = 10, so x =", " 2", "2", ["6"]),
    ("factual_control", "Marn is the capital of Veloria. The capital of Veloria is", " Marn", "Marn", []),
]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


def corpus_rows(n=24):
    rows = []
    for i in range(n):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(4 + (i * 5) % 17)]
        rows.append({"id": f"doc-{i:03d}", "source": ["web", "wiki", "code"][i % 3], "text": " ".join(words)})
    if n > 5:
        rows[5]["text"] += " the answer is 21"
    return rows


def query_rows():
    return [{"id": f"q{i}", "task": task, "prompt": prompt, "completion": completion, "answer": answer,
             "steps": steps, "extra": i} for i, (task, prompt, completion, answer, steps) in enumerate(QUERIES)]


SMALL_FLAGS = ["--batch-size", "4", "--chunk-docs", "6", "--max-length", "24", "--token-topk", "2",
               "--query-rank", "4", "--factor-docs", "16"]


def run_cli(*args, env=None, check=True):
    """`python -m precompute --quiet ARGS` from the repository root; returns the CompletedProcess."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **(env or {})}
    result = subprocess.run([sys.executable, "-m", "precompute", "--quiet", *map(str, args)], cwd=ROOT,
                            env=full_env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def run_args(world, out, *extra):
    return ["run", "--model", world["model"], "--corpus", world["corpus"], "--queries", world["queries"],
            "--out", out, *SMALL_FLAGS, *extra]


def race_two_writers(writer, path, n: int) -> None:
    """Two forked processes start `writer(path, prefix, n, barrier)` together (prefixes "a" and "b"), the way two
    dashboard tabs write one file beside a run; both must exit cleanly."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    writers = [context.Process(target=writer, args=(str(path), prefix, n, barrier)) for prefix in "ab"]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
