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


def column_multipliers(inputs: AnalysisInputs, column: str, values, seed: int = statistics.DEFAULT_SEED,
                       n_resamples: int = statistics.N_RESAMPLES) -> pd.DataFrame:
    """breakdowns.multipliers for one document column given as values in score-column order."""
    ctx = AnalysisContext(inputs, seed=seed, n_resamples=n_resamples, progress=False)
    codes, names = pd.factorize(pd.Series(list(values), dtype=object).astype(str), sort=True)
    ctx.categorical = {column: (codes.astype(np.int64), [str(n) for n in names])}
    ctx.rows = {"category_counts": [
        breakdowns.category_counts(ctx, RowView(i, np.asarray(inputs.scores[i], dtype=np.float32)))
        for i in range(ctx.n_queries)]}
    return breakdowns.multipliers(ctx, column)


def label_multipliers(inputs: AnalysisInputs, labels: run_labels.Labels, **options) -> pd.DataFrame:
    values, _ = run_labels.label_column(labels, inputs.documents["id"].astype(str))
    return column_multipliers(inputs, "label", values, **options)


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
