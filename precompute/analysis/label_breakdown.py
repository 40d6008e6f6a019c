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


def row_cutoffs(values: np.ndarray, ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, last column), each [2 sides (top, bottom), len(ks)], of one score row: document d is among a
    side's first k (ties by index, NaN after every number, as ranking.top_columns) iff key[d] > threshold, or
    key[d] == threshold and d <= last column; key = the values (negated for the bottom), NaN read as -inf. One
    partition of the row, no sort; independent of any document column, so computed once per run."""
    values = np.asarray(values)
    n = len(values)
    threshold = np.full((2, len(ks)), -np.inf)
    last = np.full((2, len(ks)), n - 1, dtype=np.int64)
    top_key, top_thresholds, bottom_key, bottom_thresholds = _thresholds(values, ks)
    for side, (key, found) in enumerate(((top_key, top_thresholds), (bottom_key, bottom_thresholds))):
        for position, k in enumerate(ks):
            if k >= n:
                continue                                       # every document: key > -inf or d <= n - 1
            room = k - int(np.count_nonzero(key > found[k]))   # places left for documents tied at the threshold
            threshold[side, position] = found[k]
            last[side, position] = np.flatnonzero(key == found[k])[room - 1]
    return threshold, last


def sparse_category_counts(values: np.ndarray, codes: np.ndarray, n_categories: int, background: int,
                           ks: list[int], cutoffs: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """breakdowns.category_counts' {side: [len(ks), categories]} for a column where most documents have the
    `background` category (unlabelled): only the other documents' scores are read and placed against the row's
    cutoffs (row_cutoffs, computed here when not given); the background count is k minus theirs."""
    chosen = np.flatnonzero(codes != background)
    threshold, last = row_cutoffs(values, ks) if cutoffs is None else cutoffs
    scores = np.asarray(values[chosen], dtype=np.float64)
    found = {}
    for side, (name, sign) in enumerate((("top", 1.0), ("bottom", -1.0))):
        key = np.where(np.isnan(scores), -np.inf, sign * scores)
        inside = (key > threshold[side][:, None]) | ((key == threshold[side][:, None])
                                                     & (chosen <= last[side][:, None]))
        counts = np.stack([np.bincount(codes[chosen][among], minlength=n_categories) for among in inside]) \
            if len(ks) else np.zeros((0, n_categories), dtype=np.int64)
        counts[:, background] = np.minimum(ks, len(values)) - counts.sum(axis=1) + counts[:, background]
        found[name] = counts
    return found


CUTOFF_COLUMNS = {
    "query_id": "query id",
    "side": "`top` (highest scores) or `bottom` (lowest)",
    "k": "k of the category multipliers (50, 500, ... below the corpus size, then the corpus size)",
    "threshold": "the side's k-th score (negated for the bottom; NaN scores read as -inf; -inf when k is the "
                 "corpus size)",
    "last_column": "the last score column, in index order, among the documents tied at the threshold that are "
                   "inside the side's first k",
}


def cutoff_table(query_ids, cutoffs: list[tuple[np.ndarray, np.ndarray]], ks: list[int]) -> pd.DataFrame:
    """CUTOFF_COLUMNS rows from row_cutoffs per query (in query order)."""
    rows = [(str(query), side, k, float(threshold[s, position]), int(last[s, position]))
            for query, (threshold, last) in zip(query_ids, cutoffs)
            for s, side in enumerate(("top", "bottom")) for position, k in enumerate(ks)]
    return pd.DataFrame(rows, columns=list(CUTOFF_COLUMNS))


def cutoffs_from_table(table: pd.DataFrame | None, query_ids, ks: list[int]) -> list | None:
    """row_cutoffs per query read back from a cutoff_table; None when the table is missing or does not hold
    exactly these queries and ks (then the caller computes them)."""
    if table is None or list(table.columns) != list(CUTOFF_COLUMNS):
        return None
    wanted = pd.MultiIndex.from_product([[str(q) for q in query_ids], ["top", "bottom"], ks])
    indexed = table.assign(query_id=table["query_id"].astype(str)).set_index(["query_id", "side", "k"])
    if len(indexed) != len(wanted) or not indexed.index.is_unique or not wanted.isin(indexed.index).all():
        return None
    ordered = indexed.loc[wanted]
    shape = (len(query_ids), 2, len(ks))
    return list(zip(ordered["threshold"].to_numpy(np.float64).reshape(shape),
                    ordered["last_column"].to_numpy(np.int64).reshape(shape)))


def query_cutoffs(inputs: AnalysisInputs, table: pd.DataFrame | None = None) -> list:
    """row_cutoffs per query: read from a rank_cutoffs table when it matches the run, else computed (one
    partition per row)."""
    ks = breakdowns.multiplier_ks(len(inputs.documents))
    found = cutoffs_from_table(table, [str(q["id"]) for q in inputs.queries], ks)
    if found is not None:
        return found
    return [row_cutoffs(np.asarray(inputs.scores[i], dtype=np.float32), ks) for i in range(len(inputs.queries))]


def string_codes(values) -> tuple[np.ndarray, list[str]]:
    """pd.factorize of the values as strings (codes, sorted names); only the distinct values are made strings
    unless two of them read the same or one is missing (then every value is, as before)."""
    codes, uniques = pd.factorize(np.asarray(list(values), dtype=object))
    names = [str(u) for u in uniques]
    if (codes < 0).any() or len(set(names)) < len(names):
        codes, uniques = pd.factorize(pd.Series(list(values), dtype=object).astype(str), sort=True)
        return codes.astype(np.int64), [str(n) for n in uniques]
    order = sorted(range(len(names)), key=names.__getitem__)
    recode = np.empty(len(names), dtype=np.int64)
    recode[order] = np.arange(len(names))
    return recode[codes], [names[i] for i in order]


def column_multipliers(inputs: AnalysisInputs, column: str, values, seed: int = statistics.DEFAULT_SEED,
                       n_resamples: int = statistics.N_RESAMPLES, background: str | None = None,
                       cutoffs: list | None = None) -> pd.DataFrame:
    """breakdowns.multipliers for one document column given as values in score-column order. With a
    `background` category (e.g. unlabelled) the counts come from sparse_category_counts (no full sort per row;
    with `cutoffs`, row_cutoffs per query, only the other documents' scores are read)."""
    ctx = AnalysisContext(inputs, seed=seed, n_resamples=n_resamples, progress=False)
    codes, names = string_codes(values)
    ctx.categorical = {column: (codes, names)}
    ks = breakdowns.multiplier_ks(ctx.n_docs)
    rows = []
    for i in range(ctx.n_queries):
        row = np.asarray(inputs.scores[i], dtype=np.float32)    # a memory-mapped row is read only where indexed
        if background in names:
            rows.append({column: sparse_category_counts(row, codes, len(names), names.index(background), ks,
                                                        None if cutoffs is None else cutoffs[i])})
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


def task_tops(inputs: AnalysisInputs, k: int) -> dict[str, np.ndarray]:
    """task -> task_top_documents (independent of the labels: a caller may keep it across labels revisions)."""
    return {task: task_top_documents(inputs, task, k) for task in dict.fromkeys(str(q["task"]) for q in inputs.queries)}


def sample_comparison(inputs: AnalysisInputs, labels: run_labels.Labels, k: int,
                      tops: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per task and label: its share among the labelled documents of the task's top k (distinct documents;
    `tops`: task_tops(inputs, k) when the caller has it) and among the labelled random sample, exact
    (Clopper-Pearson) 95% intervals, their ratio and Fisher's exact two-sided p-value for equal shares."""
    doc_ids = inputs.documents["id"]
    sampled = [labels.labels[d] for d in labels.sample if d in labels.labels]
    rows = []
    for task, top_columns in (task_tops(inputs, k) if tops is None else tops).items():
        top = [labels.labels[d] for d in doc_ids.iloc[top_columns].astype(str) if d in labels.labels]
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
