"""Two runs on their shared queries (by id) and shared documents (by id): per-query score correlation, top-k
overlap, one query's top lists with each document's rank in the other run, and the two runs' findings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import ranking
from dashboard.run import Run, RunKey, analysis_table
from precompute.analysis import run_difference

KS = [10, 50, 100, 500, 1000]


@st.cache_data(show_spinner=False, max_entries=16)
def alignment(key_a: RunKey, key_b: RunKey, _a: Run, _b: Run):
    """(shared query ids, their rows in a and b, shared document columns in a and in b)."""
    ids_a = _a.queries["id"].tolist()
    rows_b = dict(zip(_b.queries["id"], range(_b.n_queries)))
    shared = [q for q in ids_a if q in rows_b]
    rows_a = np.array([ids_a.index(q) for q in shared], dtype=np.int64)
    rows_b = np.array([rows_b[q] for q in shared], dtype=np.int64)
    if _a.n_documents == _b.n_documents and np.array_equal(_a.doc_ids, _b.doc_ids):
        columns = np.arange(_a.n_documents)
        return shared, rows_a, rows_b, columns, columns
    in_b = _b.doc_positions.get_indexer(_a.doc_ids)
    columns_a = np.flatnonzero(in_b >= 0)
    return shared, rows_a, rows_b, columns_a, in_b[columns_a]


def _aligned_rows(a: Run, b: Run, row_a: int, row_b: int, columns_a, columns_b):
    x, y = np.asarray(a.scores[row_a]), np.asarray(b.scores[row_b])
    if len(columns_a) != len(x):
        x = x[columns_a]
    if len(columns_b) != len(y):
        y = y[columns_b]
    return x, y


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r in float64: Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²)."""
    if len(x) < 2:
        return float("nan")
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else float("nan")


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _agreement_base(key_a: RunKey, key_b: RunKey, _a: Run, _b: Run) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One pass over the shared queries: Pearson r, and each run's top max(KS) documents (in shared columns)."""
    shared, rows_a, rows_b, columns_a, columns_b = alignment(key_a, key_b, _a, _b)
    depth = max(KS)
    correlations, tops_a, tops_b = [], [], []
    for row_a, row_b in zip(rows_a, rows_b):
        x, y = _aligned_rows(_a, _b, int(row_a), int(row_b), columns_a, columns_b)
        correlations.append(pearson(x, y))
        tops_a.append(ranking.top_columns(x, depth))
        tops_b.append(ranking.top_columns(y, depth))
    tasks = _a.queries["task"].astype(str).to_numpy()[rows_a] if len(rows_a) else []
    table = pd.DataFrame({"query_id": shared, "task": tasks, "pearson": correlations})
    return table, np.array(tops_a, dtype=np.int64), np.array(tops_b, dtype=np.int64)


def per_query_agreement(key_a: RunKey, key_b: RunKey, k: int, _a: Run, _b: Run) -> pd.DataFrame:
    """Per shared query: Pearson r of the two runs' scores over shared documents and overlap of their top k."""
    table, tops_a, tops_b = _agreement_base(key_a, key_b, _a, _b)
    overlap = [len(np.intersect1d(a[:k], b[:k])) / max(len(a[:k]), 1) for a, b in zip(tops_a, tops_b)]
    return table.assign(**{f"top_{k}_overlap": overlap})


def per_task(agreement: pd.DataFrame, k: int) -> pd.DataFrame:
    """Agreement by task: queries, mean and median Pearson, mean top-k overlap."""
    grouped = agreement.groupby("task", sort=True)
    return pd.DataFrame({"queries": grouped.size(), "mean_pearson": grouped["pearson"].mean(),
                         "median_pearson": grouped["pearson"].median(),
                         f"mean_top_{k}_overlap": grouped[f"top_{k}_overlap"].mean()}).reset_index()


def ranks_in(run: Run, row: int, doc_ids: np.ndarray) -> np.ndarray:
    """1-based rank (by raw score, descending) of each document in `run`'s row; 0 where the run lacks it."""
    values = np.asarray(run.scores[row])
    columns = run.doc_positions.get_indexer(doc_ids)
    ranks = np.zeros(len(doc_ids), dtype=np.int64)
    for i, column in enumerate(columns):
        if column >= 0:
            ranks[i] = 1 + int(np.count_nonzero(values > values[column]))
    return ranks


def top_list(run: Run, other: Run, query_id: str, k: int, texts: pd.Series) -> pd.DataFrame:
    """The run's top k for a query, each document's rank in the other run (missing when that run lacks it) and the
    change (rank here − rank there), and whether it is in the other's top k."""
    top, values, _, _ = ranking.ranked_documents(run.key, run, run.query_row(query_id), "raw", k)
    ids = run.doc_ids[top]
    there = ranks_in(other, other.query_row(query_id), ids)
    return pd.DataFrame({
        "rank": np.arange(1, len(top) + 1), "doc_id": ids, "score": values, "source": run.doc_sources[top],
        "in_both_top": (there >= 1) & (there <= k),
        "rank_other_run": pd.Series(there, dtype="Int64").where(there > 0),
        "rank_change": pd.Series(np.arange(1, len(top) + 1) - there, dtype="Int64").where(there > 0),
        "text": [" ".join(str(texts.iloc[int(c)])[:140].split()) for c in top],
    })


FINDING_FIELDS = {"effect": "effect", "ci_low": "low", "ci_high": "high", "n": "n", "verdict": "verdict"}


def findings_side_by_side(a: dict | None, b: dict | None, name_a: str, name_b: str) -> pd.DataFrame:
    """Both runs' findings in one table, one row per finding and numbers in their own columns (`<run> effect`,
    `<run> low`, `<run> high`, `<run> n`, `<run> verdict`): the records of `findings` when present, else each
    scalar entry of an older findings.json as its effect. Runs shown under the same name (one run offered under two
    paths) are told apart as `<run> (this)` and `<run> (other)`, else one run's columns would replace the other's."""
    def rows(found: dict | None) -> dict[str, dict]:
        if not found:
            return {}
        if isinstance(found.get("findings"), list):
            return {str(f.get("name")): {label: f.get(field) for field, label in FINDING_FIELDS.items()}
                    for f in found["findings"] if isinstance(f, dict)}
        return {key: {"effect": value} for key, value in found.items()
                if key not in ("notes", "seed") and isinstance(value, (int, float, bool, str))}

    if name_a == name_b:
        name_a, name_b = f"{name_a} (this)", f"{name_b} (other)"
    sides = [(name_a, rows(a)), (name_b, rows(b))]
    names = list(dict.fromkeys(name for _, found in sides for name in found))
    table = pd.DataFrame({"finding": names})
    for run_name, found in sides:
        for label in FINDING_FIELDS.values():
            values = [found.get(name, {}).get(label) for name in names]
            table[f"{run_name} {label}"] = values if label == "verdict" else pd.to_numeric(
                pd.Series(values, dtype=object), errors="coerce")
    return table

@st.cache_data(show_spinner="Bootstrapping the differences between the runs' findings…", max_entries=16)
def finding_differences(key_a: RunKey, key_b: RunKey) -> pd.DataFrame:
    """The findings both runs define on their shared queries, each run's value and the contrast between them with a
    paired bootstrap interval (precompute.analysis.run_difference, from the runs' analysis tables)."""
    tables = [{name: analysis_table(key, name) for name in run_difference.TABLES} for key in (key_a, key_b)]
    return run_difference.finding_differences(*tables)
