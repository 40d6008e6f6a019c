"""Differences between two runs' findings on their shared queries: the paired bootstrap interval of
precompute.analysis.run_difference against a slow reference (a plain loop drawing the shared queries with a seeded
numpy generator, forming pairs one by one and averaging per-nat values directly), on planted pairs of runs."""
import numpy as np
import pandas as pd
import pytest

from precompute.analysis import statistics
from precompute.analysis.run_difference import finding_differences, pearson_matrix, shared_queries
from precompute.analysis.tables.magnitude import FINDING_PERCENTILE


def correlation_differences(table_a, table_b, **options):
    return finding_differences({"correlations": table_a}, {"correlations": table_b}, **options)

TASKS = ["factual"] * 10 + ["arithmetic"] * 8 + ["slope"] * 8
PLANTED = 0.15   # run a's same-task arithmetic pairs correlate this much more than run b's


def correlations_table(ids, tasks, r) -> pd.DataFrame:
    a, b = np.meshgrid(np.arange(len(ids)), np.arange(len(ids)), indexing="ij")
    return pd.DataFrame({"query_a": np.asarray(ids)[a.ravel()], "query_b": np.asarray(ids)[b.ravel()],
                         "task_a": np.asarray(tasks)[a.ravel()], "task_b": np.asarray(tasks)[b.ravel()],
                         "pearson": r.ravel(), "p_value": 0.5})


def symmetric(rng, n, scale):
    noise = rng.normal(0, scale, (n, n))
    r = (noise + noise.T) / 2
    np.fill_diagonal(r, 1.0)
    return r


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    n = len(TASKS)
    ids = [f"q{i:02d}" for i in range(n)]
    tasks = np.array(TASKS)
    base = 0.1 + symmetric(rng, n, 0.1)
    same = np.equal.outer(tasks, tasks)
    r_b = base + 0.1 * (same & (tasks != "factual")[:, None]) + symmetric(rng, n, 0.03)
    r_a = r_b + PLANTED * (same & (tasks == "arithmetic")[:, None]) + symmetric(rng, n, 0.1)
    np.fill_diagonal(r_a, 1.0)
    np.fill_diagonal(r_b, 1.0)
    # run b has one query more, and one of run a's queries under another task: neither is shared
    ids_b, tasks_b = ids + ["extra"], list(TASKS) + ["factual"]
    tasks_b[0] = "slope"
    r_b_big = np.pad(r_b, ((0, 1), (0, 1)), constant_values=0.2)
    return (correlations_table(ids, TASKS, r_a), correlations_table(ids_b, tasks_b, r_b_big), r_a[1:, 1:],
            r_b[1:, 1:], tasks[1:])


def pooled_within(r, drawn_groups):
    """Mean r over pairs of drawn queries of the same group (pooled), a query never paired with itself."""
    total = count = 0.0
    for drawn in drawn_groups:
        for i in drawn:
            for j in drawn:
                if i != j and np.isfinite(r[i, j]):
                    total, count = total + r[i, j], count + 1
    return total / count if count else np.nan


def reference_interval(r_a, r_b, groups, n_resamples=8000, seed=1):
    """Percentile interval (the findings' expanded alpha) of the paired difference by a plain resampling loop."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(n_resamples):
        drawn = [group[rng.integers(0, len(group), len(group))] for group in groups]
        value_a = pooled_within(r_a, drawn[:-1]) - pooled_within(r_a, drawn[-1:])
        value_b = pooled_within(r_b, drawn[:-1]) - pooled_within(r_b, drawn[-1:])
        differences.append(value_a - value_b)
    alpha = statistics.expanded_alpha(statistics.ALPHA, min(len(g) for g in groups))
    return np.percentile(differences, [100 * alpha / 2, 100 * (1 - alpha / 2)])


def test_paired_interval_matches_a_plain_resampling_loop(planted):
    table_a, table_b, r_a, r_b, tasks = planted
    result = correlation_differences(table_a, table_b, n_resamples=8000).set_index("finding")
    groups = [np.flatnonzero(tasks == t) for t in ("arithmetic", "slope", "factual")]
    for name, chosen in (("correlation.reasoning_vs_factual", groups),
                         ("correlation.reasoning_vs_factual.arithmetic", [groups[0], groups[2]])):
        row = result.loc[name]
        direct_a = pooled_within(r_a, chosen[:-1]) - pooled_within(r_a, chosen[-1:])
        direct_b = pooled_within(r_b, chosen[:-1]) - pooled_within(r_b, chosen[-1:])
        assert row["effect_a"] == pytest.approx(direct_a, abs=1e-12)
        assert row["effect_b"] == pytest.approx(direct_b, abs=1e-12)
        assert row["contrast"] == pytest.approx(direct_a - direct_b, abs=1e-12)
        low, high = reference_interval(r_a, r_b, chosen)
        width = high - low
        # two independent Monte Carlo runs of 8,000 resamples: the ends agree to a few % of the width
        assert abs(row["ci_low"] - low) < 0.07 * width and abs(row["ci_high"] - high) < 0.07 * width, (
            name, row["ci_low"], row["ci_high"], low, high)
        assert row["n_queries"] == sum(len(g) for g in chosen)
    arithmetic = result.loc["correlation.reasoning_vs_factual.arithmetic"]
    assert arithmetic["verdict"] == "differs" and arithmetic["ci_low"] > 0    # the planted difference is found
    assert arithmetic["ci_low"] < PLANTED < arithmetic["ci_high"]
    assert result.loc["correlation.reasoning_vs_factual.slope", "verdict"] == "no difference shown"


def test_a_run_against_itself_differs_by_nothing_and_shared_ids_need_the_same_task(planted):
    table_a, table_b, *_ = planted
    same = correlation_differences(table_a, table_a, n_resamples=200)
    assert (same["contrast"] == 0).all() and (same["ci_low"] == 0).all() and (same["ci_high"] == 0).all()
    assert (same["verdict"] == "no difference shown").all()
    tasks_a = dict(zip(table_a["query_a"], table_a["task_a"]))
    tasks_b = dict(zip(table_b["query_a"], table_b["task_a"]))
    assert shared_queries(tasks_a, tasks_b) == [f"q{i:02d}" for i in range(1, len(TASKS))]
    matrix = pearson_matrix(table_b, ["q05", "extra", "missing"])
    assert matrix[0, 1] == 0.2 and np.isnan(matrix[2]).all() and np.isnan(matrix[:, 2]).all()


def magnitude_table(ids, tasks, per_nat) -> pd.DataFrame:
    """A magnitude table with the finding's percentile (and one other, and the negative sign, to be ignored)."""
    rows = []
    for query_id, task, value in zip(ids, tasks, per_nat):
        rows += [(query_id, task, "positive", FINDING_PERCENTILE, value), (query_id, task, "positive", 10.0, 1e9),
                 (query_id, task, "negative", FINDING_PERCENTILE, 1e9)]
    return pd.DataFrame(rows, columns=["query_id", "task", "sign", "percentile", "per_nat"])


def test_magnitude_ratio_of_ratios_matches_a_plain_resampling_loop():
    rng = np.random.default_rng(3)
    tasks = np.array(["factual"] * 12 + ["arithmetic"] * 9 + ["slope"] * 9)
    ids = [f"q{i:02d}" for i in range(len(tasks))]
    per_nat_b = np.exp(rng.normal(0, 0.5, len(tasks))) * np.where(tasks == "factual", 1.0, 3.0)
    per_nat_a = per_nat_b * np.where(tasks == "factual", 1.0, 2.0) * np.exp(rng.normal(0, 0.3, len(tasks)))
    per_nat_a[0] = np.nan                       # low information in run a: left out of both runs
    result = finding_differences({"magnitude": magnitude_table(ids, tasks, per_nat_a)},
                                 {"magnitude": magnitude_table(ids, tasks, per_nat_b)},
                                 n_resamples=8000).set_index("finding").loc["magnitude.per_nat_top1"]
    groups = [np.flatnonzero(tasks == "arithmetic"), np.flatnonzero(tasks == "slope"),
              np.flatnonzero(tasks == "factual")[1:]]

    def ratio(values, drawn):
        return np.mean(np.concatenate([values[d] for d in drawn[:-1]])) / np.mean(values[drawn[-1]])
    assert result["measure"] == "ratio" and result["n_queries"] == 29
    assert result["effect_a"] == pytest.approx(ratio(per_nat_a, groups), rel=1e-12)
    assert result["contrast"] == pytest.approx(ratio(per_nat_a, groups) / ratio(per_nat_b, groups), rel=1e-12)
    draws = np.random.default_rng(5)
    values = []
    for _ in range(8000):
        drawn = [group[draws.integers(0, len(group), len(group))] for group in groups]
        values.append(ratio(per_nat_a, drawn) / ratio(per_nat_b, drawn))
    alpha = statistics.expanded_alpha(statistics.ALPHA, 9)
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    width = high - low
    assert abs(result["ci_low"] - low) < 0.07 * width and abs(result["ci_high"] - high) < 0.07 * width
    assert result["verdict"] == "differs" and result["ci_low"] < 2.0 < result["ci_high"]   # the planted 2×
