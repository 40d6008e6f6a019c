"""Run directories for the dashboard tests, written by `python -m precompute synth` into a temp folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")
XSS_DOC = "<img src=x onerror=alert(1)> and <script>alert(2)</script> in a document"
XSS_PROMPT = "<script>alert(3)</script> prompt"


def synth_run(out: Path, queries: int = 24, docs: int = 3000, seed: int = 0) -> Path:
    subprocess.run([sys.executable, "-m", "precompute", "synth", "--out", str(out), "--queries", str(queries),
                    "--docs", str(docs), "--seed", str(seed)], cwd=ROOT, check=True, capture_output=True)
    return out


def plant_markup(run: Path) -> str:
    """Put HTML into the top document of the first query (text and its tokens) and into a prompt.

    Returns the id of that query."""
    top = pd.read_parquet(run / "analysis" / "top_docs.parquet")
    first = top[(top["side"] == "top") & (top["rank"] == 1)].iloc[0]
    documents = pd.read_parquet(run / "documents.parquet")
    documents.loc[documents["id"] == first["doc_id"], "text"] = XSS_DOC
    documents.to_parquet(run / "documents.parquet")
    tokens_path = run / "token_scores.parquet"
    if tokens_path.exists():
        tokens = pd.read_parquet(tokens_path)
        tokens.loc[tokens["doc_id"] == first["doc_id"], "token"] = "<script>alert(4)</script>"
        tokens.to_parquet(tokens_path)
    lines = (run / "queries.jsonl").read_text().splitlines()
    lines[0] = lines[0].replace('"prompt": "', f'"prompt": "{XSS_PROMPT}', 1)
    (run / "queries.jsonl").write_text("\n".join(lines) + "\n")
    return str(first["query_id"])


def plant_shared_words(run: Path, query_id: str = "q0005", words: int = 8) -> str:
    """Make a query's completion repeat the first words of its top document verbatim (synthetic completions are
    one word). Returns the repeated text."""
    top = pd.read_parquet(run / "analysis" / "top_docs.parquet")
    first = top[(top["query_id"] == query_id) & (top["side"] == "top") & (top["rank"] == 1)].iloc[0]
    documents = pd.read_parquet(run / "documents.parquet", columns=["id", "text"])
    text = str(documents.loc[documents["id"] == first["doc_id"], "text"].iloc[0])
    shared = " ".join(text.split()[:words])
    lines = (run / "queries.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["id"] == query_id:
            record["completion"] = f" {shared}."
    (run / "queries.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return shared


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    run = synth_run(tmp_path_factory.mktemp("runs") / "small")
    plant_markup(run)
    plant_shared_words(run)
    return run


@pytest.fixture(scope="session")
def second_run_dir(tmp_path_factory) -> Path:
    return synth_run(tmp_path_factory.mktemp("runs") / "other", queries=20, docs=2500, seed=1)


@pytest.fixture
def app_args(monkeypatch, tmp_path):
    """Point the app at given runs (as `-- --run DIR ...`), from a folder without a runs/ directory."""
    monkeypatch.chdir(tmp_path)

    def use(*runs: Path) -> None:
        argv = ["app.py"]
        for run in runs:
            argv += ["--run", str(run)]
        monkeypatch.setattr(sys, "argv", argv)

    return use
