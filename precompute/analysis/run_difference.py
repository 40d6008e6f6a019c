"""Two runs' findings on the queries they share (by id), and the difference of each with a paired bootstrap
interval: one draw of the shared query ids (with replacement, within each task: the findings' own strata) is
applied to both runs, so the interval is that of finding(run a) − finding(run b) on the same queries
(statistics.bootstrap_test: scipy.stats.bootstrap, the findings' expanded percentile interval).

Computed from the runs' analysis tables alone (torch-free, seconds): the correlation findings, from each run's
analysis/correlations.parquet, with the statistics the findings themselves use (tables.correlations.contrast_specs).
The other findings need each query's full ranking (one pass over the scores) and get no paired interval here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import statistics
from precompute.analysis.context import is_reasoning_task
from precompute.analysis.tables.correlations import PairSums, contrast_specs

DIFFERENCE_COLUMNS = {
    "finding": "finding name (as in findings.json)",
    "effect_label": "what the effect is",
    "effect_a": "the finding in the first run, on the shared queries",
    "effect_b": "the finding in the second run, on the same queries",
    "difference": "effect_a − effect_b",
    "ci_low": "lower end of the 95% paired bootstrap interval of the difference",
    "ci_high": "upper end",
    "p_value": "p of no difference read off the same bootstrap (statistics.interval_p_value)",
    "n_queries": "shared queries that enter the finding",
    "verdict": "'differs' when the interval excludes 0, else 'no difference shown'",
}


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


def correlation_differences(correlations_a: pd.DataFrame, correlations_b: pd.DataFrame,
                            seed: int = statistics.DEFAULT_SEED,
                            n_resamples: int = statistics.N_RESAMPLES) -> pd.DataFrame:
    """One row per correlation finding both runs define on their shared queries (DIFFERENCE_COLUMNS)."""
    tasks_a = query_tasks(correlations_a)
    shared = shared_queries(tasks_a, query_tasks(correlations_b))
    tasks = np.array([tasks_a[query_id] for query_id in shared], dtype=object)
    task_rows = {task: np.flatnonzero(tasks == task) for task in dict.fromkeys(tasks)}
    pairs_a, pairs_b = (PairSums(pearson_matrix(table, shared)) for table in (correlations_a, correlations_b))
    rows = []
    for name, _, effect_label, groups, statistic, _ in contrast_specs(task_rows, [t for t in task_rows
                                                                                 if is_reasoning_task(t)]):
        def difference(*w, statistic=statistic):
            return statistic(pairs_a, w) - statistic(pairs_b, w)
        weights = statistics.query_weights(groups, len(shared))
        effect_a, effect_b = float(statistic(pairs_a, weights)), float(statistic(pairs_b, weights))
        low, high, p_value = statistics.bootstrap_test(groups, difference, len(shared),
                                                       statistics.finding_seed(seed, "run_difference/" + name),
                                                       n_resamples, null_value=0.0)
        low, high = float(low), float(high)
        verdict = "differs" if np.isfinite(low) and (low > 0 or high < 0) else "no difference shown"
        rows.append((name, effect_label, effect_a, effect_b, effect_a - effect_b, low, high, float(p_value),
                     int(sum(len(g) for g in groups)), verdict))
    return pd.DataFrame(rows, columns=list(DIFFERENCE_COLUMNS))
