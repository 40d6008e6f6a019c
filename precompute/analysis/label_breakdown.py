"""The researcher's labels (precompute/rundir/labels.py) as a categorical document column, broken down like every
other column: `column_multipliers` runs the category_multipliers code path (tables/breakdowns.py: share among
each task's top/bottom k over the corpus share, bootstrap interval, hypergeometric chance band) on any given
column, and `sample_comparison` compares the labelled top documents with a labelled random sample — the chance
band measured on the same labelling (unlabelled documents are not counted on either side)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from precompute.analysis import statistics
from precompute.analysis.context import AnalysisContext, RowView
from precompute.analysis.inputs import AnalysisInputs
from precompute.analysis.tables import breakdowns
from precompute.rundir import labels as run_labels

SAMPLE_COLUMNS = ["task", "k", "label", "top_labelled", "top_with_label", "top_share", "top_ci_low", "top_ci_high",
                  "sample_labelled", "sample_with_label", "sample_share", "sample_ci_low", "sample_ci_high",
                  "ratio", "p_value"]


def _side_counts(key: np.ndarray, chosen: np.ndarray, chosen_codes: np.ndarray, ks: list[int],
                 n_categories: int, thresholds: dict) -> np.ndarray:
    """[len(ks), categories] counts of the `chosen` documents among the k highest `key` values (ties by index,
    as ranking.top_columns); thresholds[k] = the k-th highest key value (k < len(key))."""
    n = len(key)
    counts = np.zeros((len(ks), n_categories), dtype=np.int64)
    for position, k in enumerate(ks):
        if k >= n:
            counts[position] = np.bincount(chosen_codes, minlength=n_categories)
            continue
        threshold = thresholds[k]
        above = key[chosen] > threshold
        room = k - int(np.count_nonzero(key > threshold))      # places left for documents tied at the threshold
        tied = np.flatnonzero(key == threshold)[:room]          # ties by index: the first `room` of them
        inside = above | np.isin(chosen, tied, assume_unique=True)
        counts[position] = np.bincount(chosen_codes[inside], minlength=n_categories)
    return counts


def _thresholds(values: np.ndarray, ks: list[int]) -> tuple[np.ndarray, dict, np.ndarray, dict]:
    """(top key, k -> k-th highest, bottom key, k -> k-th highest of the bottom key): one partition of the row
    for both sides when it has no NaN (NaN never ranks above a number, on either side)."""
    n = len(values)
    small = [k for k in ks if k < n]
    if not np.isnan(values).any():
        part = np.partition(values, sorted({n - k for k in small} | {k - 1 for k in small})) if small else values
        return values, {k: part[n - k] for k in small}, -values, {k: -part[k - 1] for k in small}
    keys = [np.where(np.isnan(values), -np.inf, values), np.where(np.isnan(values), -np.inf, -values)]
    parts = [np.partition(key, [n - k for k in small]) if small else key for key in keys]
    return keys[0], {k: parts[0][n - k] for k in small}, keys[1], {k: parts[1][n - k] for k in small}


def sparse_category_counts(values: np.ndarray, codes: np.ndarray, n_categories: int, background: int,
                           ks: list[int]) -> dict:
    """breakdowns.category_counts' {side: [len(ks), categories]} for a column where most documents have the
    `background` category (unlabelled): only the other documents are located (one partition of the row, no
    sort), the background count is k minus theirs."""
    values = np.asarray(values)
    chosen = np.flatnonzero(codes != background)
    top_key, top_thresholds, bottom_key, bottom_thresholds = _thresholds(values, ks)
    found = {}
    for side, key, thresholds in (("top", top_key, top_thresholds), ("bottom", bottom_key, bottom_thresholds)):
        counts = _side_counts(key, chosen, codes[chosen], ks, n_categories, thresholds)
        counts[:, background] = np.minimum(ks, len(values)) - counts.sum(axis=1) + counts[:, background]
        found[side] = counts
    return found


def column_multipliers(inputs: AnalysisInputs, column: str, values, seed: int = statistics.DEFAULT_SEED,
                       n_resamples: int = statistics.N_RESAMPLES, background: str | None = None) -> pd.DataFrame:
    """breakdowns.multipliers for one document column given as values in score-column order. With a
    `background` category (e.g. unlabelled) the counts come from sparse_category_counts (no full sort per row)."""
    ctx = AnalysisContext(inputs, seed=seed, n_resamples=n_resamples, progress=False)
    codes, names = pd.factorize(pd.Series(list(values), dtype=object).astype(str), sort=True)
    names = [str(n) for n in names]
    ctx.categorical = {column: (codes.astype(np.int64), names)}
    ks = breakdowns.multiplier_ks(ctx.n_docs)
    rows = []
    for i in range(ctx.n_queries):
        row = np.asarray(inputs.scores[i], dtype=np.float32)
        if background in names:
            rows.append({column: sparse_category_counts(row, codes, len(names), names.index(background), ks)})
        else:
            rows.append(breakdowns.category_counts(ctx, RowView(i, row)))
    ctx.rows = {"category_counts": rows}
    return breakdowns.multipliers(ctx, column)


def label_multipliers(inputs: AnalysisInputs, labels: run_labels.Labels, **options) -> pd.DataFrame:
    values, _ = run_labels.label_column(labels, inputs.documents["id"].astype(str))
    return column_multipliers(inputs, "label", values, background=run_labels.UNLABELLED, **options)


def _interval(hits: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    found = stats.binomtest(hits, n).proportion_ci(confidence_level=1 - statistics.ALPHA, method="exact")
    return float(found.low), float(found.high)


def task_top_documents(inputs: AnalysisInputs, task: str, k: int) -> np.ndarray:
    """The distinct documents among the top k of the task's queries (score columns)."""
    from precompute.analysis.ranking import top_columns
    rows = [i for i, q in enumerate(inputs.queries) if str(q["task"]) == task]
    chosen = [top_columns(np.asarray(inputs.scores[i], dtype=np.float32), k) for i in rows]
    return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def sample_comparison(inputs: AnalysisInputs, labels: run_labels.Labels, k: int) -> pd.DataFrame:
    """Per task and label: its share among the labelled documents of the task's top k (distinct documents) and
    among the labelled random sample, exact (Clopper-Pearson) 95% intervals, their ratio and Fisher's exact
    two-sided p-value for equal shares."""
    doc_ids = inputs.documents["id"].astype(str).to_numpy(dtype=object)
    sampled = [labels.labels[d] for d in labels.sample if d in labels.labels]
    rows = []
    for task in dict.fromkeys(str(q["task"]) for q in inputs.queries):
        top = [labels.labels[d] for d in doc_ids[task_top_documents(inputs, task, k)] if d in labels.labels]
        for label in labels.label_set:
            a, n_a = sum(v == label for v in top), len(top)
            b, n_b = sum(v == label for v in sampled), len(sampled)
            share_a = a / n_a if n_a else float("nan")
            share_b = b / n_b if n_b else float("nan")
            p = stats.fisher_exact([[a, n_a - a], [b, n_b - b]]).pvalue if n_a and n_b else float("nan")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.float64(share_a) / np.float64(share_b)
            rows.append([task, k, label, n_a, a, share_a, *_interval(a, n_a), n_b, b, share_b,
                         *_interval(b, n_b), float(ratio), float(p)])
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
