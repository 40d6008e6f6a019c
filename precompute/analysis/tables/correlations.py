"""Query × query Pearson correlations of scores over documents; per task pair with bootstrap intervals; the
paper's correlation findings (same-task reasoning vs factual, and vs cross-task reasoning: the paper's control).

Every pair statistic is a ratio of weighted pair sums: for group weights w_a, w_b (how often each query is drawn),
Σ_ij w_a[i] r_ij w_b[j] / Σ_ij w_a[i] valid_ij w_b[j] with the diagonal excluded, so a resampled query never pairs
with itself and pairs are re-formed from the resampled queries.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import statistics
from precompute.analysis.registry import findings, table
from precompute.analysis.statistics import Finding

MIN_GROUP = 3   # queries a task needs for its pair statistics to be resampled


class PairSums:
    """r with NaN and the diagonal set to 0, and the matching 0/1 mask of valid pairs."""

    def __init__(self, r: np.ndarray):
        valid = np.isfinite(r) & ~np.eye(len(r), dtype=bool)
        self.values = np.where(valid, r, 0.0)
        self.valid = valid.astype(np.float64)

    def sums(self, wa: np.ndarray, wb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.sum((wa @ self.values) * wb, axis=-1), np.sum((wa @ self.valid) * wb, axis=-1)

    def mean(self, wa, wb):
        total, count = self.sums(wa, wb)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count

    def within(self, groups):
        """Mean r over pairs of queries of the same group, pooled over groups."""
        parts = [self.sums(w, w) for w in groups]
        with np.errstate(invalid="ignore", divide="ignore"):
            return sum(p[0] for p in parts) / sum(p[1] for p in parts)

    def across(self, first, others):
        """Mean r over pairs with one query in `first` and one in any of `others`."""
        return self.mean(first, sum(others))

    def across_all(self, groups):
        """Mean r over pairs of queries from two different groups."""
        everyone = sum(groups)
        total, count = self.sums(everyone, everyone)
        for w in groups:
            inside = self.sums(w, w)
            total, count = total - inside[0], count - inside[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count


@table("correlations", "one row per ordered query pair, diagonal included", {
    "query_a": "query id", "query_b": "query id", "task_a": "task of query_a", "task_b": "task of query_b",
    "pearson": "Pearson r of the two score rows over all documents (NaN for a constant row)",
    "p_value": "two-sided p-value of that r alone (t test over documents; not corrected, not averaged anywhere)"})
def correlations(ctx) -> pd.DataFrame:
    r, p = ctx.pearson
    a, b = (index.ravel() for index in np.meshgrid(np.arange(ctx.n_queries), np.arange(ctx.n_queries), indexing="ij"))
    return pd.DataFrame({"query_a": ctx.query_ids[a], "query_b": ctx.query_ids[b], "task_a": ctx.tasks[a],
                         "task_b": ctx.tasks[b], "pearson": r.ravel(), "p_value": p.ravel()})


@table("task_correlations", "mean Pearson r per (unordered, both orders listed) task pair over off-diagonal query "
       "pairs, with a bootstrap interval over queries", {
           "task_a": "task", "task_b": "task", "mean_pearson": "mean r over the pairs",
           "std_pearson": "standard deviation of r over the pairs", "n_pairs": "distinct query pairs (each unordered pair once; a query with itself never)",
           "ci_low": "lower end of the 95% interval (bootstrap over queries of each task; NaN below 3 queries)",
           "ci_high": "upper end of the 95% interval"})
def task_correlations(ctx) -> pd.DataFrame:
    r, _ = ctx.pearson
    pairs = PairSums(r)
    tasks = list(ctx.task_rows)
    rows, intervals = [], {}
    for i, task_a in enumerate(tasks):
        for task_b in tasks[i:]:
            groups = [ctx.task_rows[task_a]] if task_a == task_b else [ctx.task_rows[task_a], ctx.task_rows[task_b]]
            statistic = (lambda w: pairs.within([w])) if task_a == task_b else pairs.mean
            if min(len(g) for g in groups) >= MIN_GROUP:
                low, high = statistics.bootstrap_interval(groups, statistic, ctx.n_queries,
                                                          ctx.rng(f"task_correlations/{task_a}/{task_b}"),
                                                          ctx.n_resamples)
                intervals[(task_a, task_b)] = intervals[(task_b, task_a)] = (float(low), float(high))
    for task_a in tasks:
        for task_b in tasks:
            mask = np.outer(ctx.tasks == task_a, ctx.tasks == task_b) & (pairs.valid > 0)
            if task_a == task_b:  # (a, b) and (b, a) are one pair; r is symmetric: same mean and sd up to rounding
                mask = np.triu(mask, k=1)
            values = r[mask]
            low, high = intervals.get((task_a, task_b), (np.nan, np.nan))
            rows.append((task_a, task_b, float(values.mean()) if len(values) else np.nan,
                         float(values.std()) if len(values) else np.nan, int(mask.sum()), low, high))
    return pd.DataFrame(rows, columns=["task_a", "task_b", "mean_pearson", "std_pearson", "n_pairs", "ci_low",
                                       "ci_high"])


def contrast(ctx, name, claim, effect_label, groups, statistic, parts) -> Finding:
    """A difference in mean r with its bootstrap interval (strata: groups) and task-label permutation p-value."""
    pairs = PairSums(ctx.pearson[0])
    weights = statistics.query_weights(groups, ctx.n_queries)
    effect = float(statistic(pairs, weights))
    low, high, interval_p = statistics.bootstrap_test(groups, lambda *w: statistic(pairs, w), ctx.n_queries,
                                                      ctx.rng(name), ctx.n_resamples, null_value=0.0)
    p_value = statistics.permutation_p_value(groups, lambda *w: statistic(pairs, w), ctx.n_queries,
                                             ctx.rng(name + "/permutation"), ctx.n_resamples)
    return Finding(name=name, claim=claim, effect_label=effect_label, paper_direction="greater",
                   measure="difference", effect=effect, ci_low=float(low), ci_high=float(high), p_value=p_value,
                   p_value_method="task labels permuted", n=int(sum(len(g) for g in groups)),
                   parts={key: float(value(pairs, weights)) for key, value in parts.items()},
                   interval_p=interval_p)


VS_FACTUAL = ("Queries of the same reasoning task are influenced by documents more alike (their scores correlate "
              "more) than factual queries are (Ruis et al.).")
VS_CROSS = ("Reasoning queries of the same task correlate more than reasoning queries of different tasks "
            "(Ruis et al.'s control).")


def contrast_specs(task_rows: dict[str, np.ndarray], reasoning_tasks: list[str]) -> list[tuple]:
    """(name, claim, effect_label, groups, statistic, parts) of every correlation finding, for tasks with at least
    MIN_GROUP queries; statistic(pairs, weights) and each part(pairs, weights) are PairSums statistics. Shared by
    the findings here and by the two-run differences (precompute.analysis.run_difference)."""
    groups = {task: rows for task, rows in task_rows.items() if len(rows) >= MIN_GROUP}
    reasoning = [task for task in reasoning_tasks if task in groups]
    specs = []
    if reasoning and "factual" in groups:
        def pooled(pairs, w):
            return pairs.within(w[:-1]) - pairs.within(w[-1:])
        specs.append(("correlation.reasoning_vs_factual", VS_FACTUAL, "same-task reasoning mean r minus factual mean r",
                      [groups[t] for t in reasoning] + [groups["factual"]], pooled,
                      {"reasoning": lambda p, w: p.within(w[:-1]), "factual": lambda p, w: p.within(w[-1:])}))
        for task in reasoning:
            specs.append((f"correlation.reasoning_vs_factual.{task}", VS_FACTUAL, f"{task} mean r minus factual mean r",
                          [groups[task], groups["factual"]], pooled,
                          {task: lambda p, w: p.within(w[:1]), "factual": lambda p, w: p.within(w[1:])}))
    if len(reasoning) >= 2:
        specs.append(("correlation.same_vs_cross_task", VS_CROSS, "same-task minus cross-task mean r (reasoning pairs)",
                      [groups[t] for t in reasoning], lambda p, w: p.within(w) - p.across_all(w),
                      {"same_task": lambda p, w: p.within(w), "cross_task": lambda p, w: p.across_all(w)}))
        for task in reasoning:
            others = [t for t in reasoning if t != task]
            specs.append((f"correlation.same_vs_cross_task.{task}", VS_CROSS,
                          f"{task} same-task mean r minus its mean r with other reasoning tasks",
                          [groups[task]] + [groups[t] for t in others],
                          lambda p, w: p.within(w[:1]) - p.across(w[0], w[1:]),
                          {"same_task": lambda p, w: p.within(w[:1]),
                           "cross_task": lambda p, w: p.across(w[0], w[1:])}))
    return specs


@findings("correlation", order=1)
def correlation_findings(ctx) -> list[Finding]:
    return [contrast(ctx, *spec) for spec in contrast_specs(ctx.task_rows, ctx.reasoning_tasks)]
