"""The numbers of an exported report (the dashboard's "Export report"), computed from a run directory alone.

`report_numbers(run_path, query_set)` is the one computation behind a report: the dashboard embeds its result in
the report's HTML as JSON, and the report's script calls it again on the run directory to regenerate every number
(dashboard/report.py draws the figures from these numbers). Without a query set the findings are the run's own
(RUN/analysis/findings.json); with one they are recomputed on the set's queries (query_subset.subset_findings), and
the counts are the set's. The LDS leaderboard and the tail-patch summary are the whole run's (their files hold
every query). Torch-free; reads files only.
"""
from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from precompute import rundir
from precompute.analysis import ranking, statistics
from precompute.analysis.inputs import load_inputs
from precompute.analysis.query_subset import subset_findings
from precompute.analysis.runner import json_ready
from precompute.rundir.score_kinds import SCORE_KINDS

FORMAT = 1
LEADERBOARD_TABLES = ("lds_summary", "validation_summary")
# the analysis pages' charts (Correlations, Magnitude, Answers, Sources), whole-run reports only
VIEW_TABLES = ("task_correlations", "magnitude_by_task", "answer_enrichment", "source_multipliers")
QUERY_FIELDS = ("id", "task", "prompt", "completion", "answer", "nats")   # an opened query's, when present
SNIPPET = 300  # characters of each listed document's text
RUN_SETTINGS = ("model", "strategy", "fisher", "damping", "modules", "query_rank", "max_length", "batch_size",
                "factor_docs", "token_topk", "device", "dtype", "seed", "world_size", "created", "synthetic",
                "imported")
HASHED_FILES = (rundir.MANIFEST, *rundir.SCORE_FILES, f"{rundir.ANALYSIS_DIR}/{rundir.FINDINGS}",
                *(f"{rundir.ANALYSIS_DIR}/{name}.parquet" for name in LEADERBOARD_TABLES + VIEW_TABLES))


class ReportError(ValueError):
    """A run directory a report cannot be made from; the message is written for a person."""


def file_hashes(run_path: str) -> dict[str, str]:
    """sha256 of each of the run's HASHED_FILES that exists, by its path inside the run directory."""
    found = {}
    for name in HASHED_FILES:
        path = os.path.join(run_path, name)
        if os.path.isfile(path):
            found[name] = rundir.sha256_of_file(path)
    return found


def _table_records(run_path: str, name: str) -> list[dict] | None:
    path = os.path.join(run_path, rundir.ANALYSIS_DIR, f"{name}.parquet")
    return pd.read_parquet(path).to_dict("records") if os.path.isfile(path) else None


def _counts(values) -> dict[str, int]:
    return {str(key): int(n) for key, n in pd.Series(values, dtype=object).astype(str).value_counts().items()}


def _run_findings(run_path: str) -> dict:
    path = os.path.join(run_path, rundir.ANALYSIS_DIR, rundir.FINDINGS)
    if not os.path.isfile(path):
        raise ReportError(f"{path}: missing; run `python -m precompute analyze --run {run_path}` first")
    return rundir.read_json(path)


def run_settings(manifest: dict) -> dict:
    """How the run was made, from its manifest: RUN_SETTINGS (those present) and `counts.*`."""
    found = {key: manifest[key] for key in RUN_SETTINGS if key in manifest}
    found.update({f"counts.{key}": value for key, value in (manifest.get("counts") or {}).items()})
    return found


def opened_query(run_path: str, opened: dict) -> dict:
    """The Queries page's opened query as the page shows it: its text, its top and bottom `k` documents under
    score `kind` (rank, id, source, score, the text's first SNIPPET characters) and its per-layer sums of
    positive and negative scores. `opened` is {"id", "kind", "k"}."""
    run = rundir.read_run(run_path)
    kind, k = str(opened["kind"]), int(opened["k"])
    if kind not in SCORE_KINDS:
        raise ReportError(f"score kind {kind!r}: one of {', '.join(SCORE_KINDS)}")
    row = run.query_row(str(opened["id"]))
    values = run.score_row(row, kind)
    texts = pq.read_table(os.path.join(run_path, rundir.DOCUMENTS), columns=["text"]).column("text")

    def listed(columns) -> list[dict]:
        snippets = texts.take(pa.array(columns, type=pa.int64())).to_pylist() if len(columns) else []
        return [{"rank": rank, "doc_id": str(run.doc_ids[column]), "source": str(run.doc_sources[column]),
                 "score": float(values[column]), "text": " ".join(str(text)[:SNIPPET].split())}
                for rank, (column, text) in enumerate(zip(columns, snippets), 1)]

    top, bottom = ranking.top_and_bottom(values, k)
    positive, negative = ranking.layer_sums(run.layer_scores[row])
    query = run.queries.iloc[row]
    return {"query": {field: query[field] for field in QUERY_FIELDS if field in query.index},
            "kind": kind, "k": k, "top": listed(top), "bottom": listed(bottom),
            "layers": {"layer": list(run.layers), "positive": positive.tolist(), "negative": negative.tolist()}}


def report_numbers(run_path: str, query_set: dict | None = None, seed: int = statistics.DEFAULT_SEED,
                   n_resamples: int = statistics.N_RESAMPLES, opened: dict | None = None) -> dict:
    """Every number of a report: settings (the report's and the run's), findings, leaderboard tables, the analysis
    views' tables (VIEW_TABLES: whole-run reports only, their tables hold every query), chart counts and the run's
    file hashes.

    `query_set` is {"name", "expression", "query_ids"} (the ids the expression selected when the report was made;
    they, not the expression, define the set here: the filter language belongs to the dashboard); `opened` is the
    Queries page's opened query ({"id", "kind", "k"}: opened_query), or None."""
    run_path = os.path.abspath(str(run_path))
    queries = rundir.read_jsonl(os.path.join(run_path, rundir.QUERIES))
    sources = pq.read_table(os.path.join(run_path, rundir.DOCUMENTS), columns=["source"]).column("source")
    if query_set is None:
        findings, tasks = _run_findings(run_path), [q["task"] for q in queries]
    else:
        chosen = {str(q) for q in query_set["query_ids"]}
        findings = subset_findings(load_inputs(rundir.RunDir(run_path)), sorted(chosen), seed, n_resamples)
        tasks = [q["task"] for q in queries if str(q["id"]) in chosen]
    settings = {"run": os.path.basename(run_path), "query_set": query_set, "opened": opened,
                "seed": findings.get("seed", seed),
                "n_resamples": findings.get("n_resamples", n_resamples),
                "run_settings": run_settings(rundir.read_json(os.path.join(run_path, rundir.MANIFEST)))}
    return json_ready({
        "format": FORMAT, "settings": settings, "findings": findings,
        "tables": {name: _table_records(run_path, name) for name in LEADERBOARD_TABLES},
        "views": {name: None if query_set else _table_records(run_path, name) for name in VIEW_TABLES},
        "counts": {"queries_per_task": _counts(tasks), "documents_per_source": _counts(sources.to_pylist()),
                   "documents": len(sources)},
        "query": opened_query(run_path, opened) if opened else None,
        "hashes": file_hashes(run_path)})
