"""Two runs' findings on the queries they share (by id and task), and how each differs between the runs with a
paired bootstrap interval: one draw of the shared query ids (with replacement, within each of the finding's groups:
its own strata) is applied to both runs, so the interval is that of finding(run a) − finding(run b) on the same
queries, or finding(run a) ÷ finding(run b) for a ratio (statistics.bootstrap_test: scipy.stats.bootstrap, the
findings' expanded percentile interval).

Computed from the runs' analysis tables alone (torch-free, seconds), with the statistics the findings themselves use:
the correlation findings from analysis/correlations.parquet (tables.correlations.contrast_specs) and the per-nat
magnitude finding from analysis/magnitude.parquet (tables.magnitude.reasoning_over_factual). The other findings need
each query's full ranking (one pass over the scores) and get no paired interval here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import statistics
from precompute.analysis.context import is_reasoning_task, reasoning_and_factual_groups
from precompute.analysis.tables.correlations import PairSums, contrast_specs
from precompute.analysis.tables.magnitude import FINDING_PERCENTILE, PER_NAT_LABEL, reasoning_over_factual

DIFFERENCE_COLUMNS = {
    "finding": "finding name (as in findings.json)",
    "effect_label": "what the effect is",
    "measure": "'difference' or 'ratio' (the finding's own measure)",
    "effect_a": "the finding in the first run, on the shared queries",
    "effect_b": "the finding in the second run, on the same queries",
    "contrast": "effect_a − effect_b for a difference, effect_a ÷ effect_b for a ratio",
    "ci_low": "lower end of the 95% paired bootstrap interval of the contrast",
    "ci_high": "upper end",
    "p_value": "p of no contrast (0, or 1 for a ratio) read off the same bootstrap (statistics.interval_p_value)",
    "n_queries": "shared queries that enter the finding",
    "verdict": "'differs' when the interval excludes no contrast, else 'no difference shown'",
}
TABLES = ("correlations", "magnitude")   # the analysis tables the differences are computed from


def pearson_matrix(correlations: pd.DataFrame, query_ids: list[str]) -> np.ndarray:
    """Query × query r over `query_ids` (in that order) from a correlations table; NaN where a pair is missing."""
    position = {query_id: i for i, query_id in enumerate(query_ids)}
    rows = correlations["query_a"].astype(str).map(position)
    columns = correlations["query_b"].astype(str).map(position)
    keep = (rows.notna() & columns.notna()).to_numpy()
    matrix = np.full((len(query_ids), len(query_ids)), np.nan)
    matrix[rows[keep].astype(int).to_numpy(), columns[keep].astype(int).to_numpy()] = (
        correlations["pearson"].to_numpy(dtype=np.float64)[keep])
    return matrix


def query_tasks(correlations: pd.DataFrame) -> dict[str, str]:
    """Each query's task, in the table's order."""
    return dict(zip(correlations["query_a"].astype(str), correlations["task_a"].astype(str)))


def shared_queries(tasks_a: dict[str, str], tasks_b: dict[str, str]) -> list[str]:
    """Query ids of the first run that the second has too, with the same task (first run's order)."""
    return [query_id for query_id, task in tasks_a.items() if tasks_b.get(query_id) == task]


def paired_row(name: str, effect_label: str, measure: str, groups: list[np.ndarray], statistic_a, statistic_b,
               n_shared: int, seed: int, n_resamples: int) -> tuple:
    """One DIFFERENCE_COLUMNS row: both runs' statistic(*weights) on the same drawn shared queries."""
    null = 1.0 if measure == "ratio" else 0.0

    def contrast(*w):
        with np.errstate(invalid="ignore", divide="ignore"):
            return statistic_a(*w) / statistic_b(*w) if measure == "ratio" else statistic_a(*w) - statistic_b(*w)
    weights = statistics.query_weights(groups, n_shared)
    low, high, p_value = statistics.bootstrap_test(groups, contrast, n_shared,
                                                   statistics.finding_seed(seed, "run_difference/" + name),
                                                   n_resamples, null_value=null)
    low, high = float(low), float(high)
    verdict = "differs" if np.isfinite(low) and (low > null or high < null) else "no difference shown"
    return (name, effect_label, measure, float(statistic_a(*weights)), float(statistic_b(*weights)),
            float(contrast(*weights)), low, high, float(p_value), int(sum(len(g) for g in groups)), verdict)


def _task_rows(tasks: np.ndarray) -> dict[str, np.ndarray]:
    return {task: np.flatnonzero(tasks == task) for task in dict.fromkeys(tasks)}


def correlation_rows(correlations_a: pd.DataFrame, correlations_b: pd.DataFrame, seed: int,
                     n_resamples: int) -> list[tuple]:
    """The correlation findings both runs define on their shared queries."""
    tasks_a = query_tasks(correlations_a)
    shared = shared_queries(tasks_a, query_tasks(correlations_b))
    task_rows = _task_rows(np.array([tasks_a[query_id] for query_id in shared], dtype=object))
    pairs_a, pairs_b = (PairSums(pearson_matrix(table, shared)) for table in (correlations_a, correlations_b))
    return [paired_row(name, effect_label, "difference", groups, lambda *w, s=statistic: s(pairs_a, w),
                       lambda *w, s=statistic: s(pairs_b, w), len(shared), seed, n_resamples)
            for name, _, effect_label, groups, statistic, _ in contrast_specs(
                task_rows, [task for task in task_rows if is_reasoning_task(task)])]


def top_per_nat(magnitude_table: pd.DataFrame) -> pd.DataFrame:
    """query_id, task, per_nat of each query's top FINDING_PERCENTILE% positive documents (NaN: low information)."""
    chosen = magnitude_table[(magnitude_table["sign"] == "positive")
                             & np.isclose(magnitude_table["percentile"], FINDING_PERCENTILE)]
    return chosen[["query_id", "task", "per_nat"]].astype({"query_id": str, "task": str})


def magnitude_rows(magnitude_a: pd.DataFrame, magnitude_b: pd.DataFrame, seed: int, n_resamples: int) -> list[tuple]:
    """magnitude.per_nat_top1 on the shared queries informative in both runs."""
    a, b = top_per_nat(magnitude_a), top_per_nat(magnitude_b)
    shared = shared_queries(dict(zip(a["query_id"], a["task"])), dict(zip(b["query_id"], b["task"])))
    per_nat_a = a.set_index("query_id")["per_nat"].reindex(shared).to_numpy(dtype=np.float64)
    per_nat_b = b.set_index("query_id")["per_nat"].reindex(shared).to_numpy(dtype=np.float64)
    tasks = a.set_index("query_id")["task"].reindex(shared).to_numpy(dtype=object)
    groups = reasoning_and_factual_groups(_task_rows(tasks), np.isfinite(per_nat_a) & np.isfinite(per_nat_b))
    if groups is None:
        return []
    return [paired_row("magnitude.per_nat_top1", PER_NAT_LABEL, "ratio", groups, reasoning_over_factual(per_nat_a),
                       reasoning_over_factual(per_nat_b), len(shared), seed, n_resamples)]


def finding_differences(tables_a: dict[str, pd.DataFrame | None], tables_b: dict[str, pd.DataFrame | None],
                        seed: int = statistics.DEFAULT_SEED, n_resamples: int = statistics.N_RESAMPLES) -> pd.DataFrame:
    """One row (DIFFERENCE_COLUMNS) per finding both runs define on their shared queries, from each run's analysis
    tables by name (TABLES; a missing table leaves its findings out)."""
    rows = []
    for name, compute in (("correlations", correlation_rows), ("magnitude", magnitude_rows)):
        if tables_a.get(name) is not None and tables_b.get(name) is not None:
            rows += compute(tables_a[name], tables_b[name], seed, n_resamples)
    return pd.DataFrame(rows, columns=list(DIFFERENCE_COLUMNS))
