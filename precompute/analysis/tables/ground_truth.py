"""Ground truth (the demo world, or any corpus with a `kind` column of `procedure:<task>[+<task>...]` values): the
share of a query's top-k documents that teach a task's procedure, against that procedure's share of the corpus."""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import statistics
from precompute.analysis.registry import findings, row_statistic, table
from precompute.analysis.statistics import Finding

KIND_COLUMN = "kind"
PROCEDURE = "procedure"
GROUND_TRUTH_KS = (10, 50, 100, 500)


def procedure_masks(ctx) -> dict[str, np.ndarray]:
    """procedure (task name) -> which documents teach it, from the `kind` column ({} without one)."""
    def compute(ctx):
        documents = ctx.inputs.documents
        if KIND_COLUMN not in documents:
            return {}
        codes, kinds = pd.factorize(documents[KIND_COLUMN].astype(str))
        taught = {}
        for code, kind in enumerate(kinds):
            family, _, detail = str(kind).partition(":")
            for task in detail.split("+") if family == PROCEDURE else []:
                taught.setdefault(task, []).append(code)
        return {task: np.isin(codes, taught[task]) for task in sorted(taught) if task}
    return ctx.shared("procedure_masks", compute)


def ground_truth_ks(ctx) -> list[int]:
    return sorted({min(k, ctx.n_docs) for k in GROUND_TRUTH_KS + (ctx.findings_k,)})


@row_statistic("procedure_counts")
def procedure_counts(ctx, row) -> dict[str, np.ndarray]:
    """procedure -> how many of the query's top k documents teach it, per k of ground_truth_ks."""
    masks = procedure_masks(ctx)
    if not masks:
        return {}
    ks = ground_truth_ks(ctx)
    top = row.descending[:max(ks)]
    return {task: np.cumsum(mask[top])[np.asarray(ks) - 1] for task, mask in masks.items()}


def share_of(counts: np.ndarray, k: int):
    def statistic(*weights):
        w = sum(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ counts) / (w.sum(axis=-1) * k)
    return statistic


def counts_of(ctx, procedure: str, position: int) -> np.ndarray:
    return np.asarray([found[procedure][position] for found in ctx.rows["procedure_counts"]], dtype=np.float64)


@table("ground_truth", "per query task, taught procedure and k: share of the top k documents that teach the "
       "procedure vs its corpus share (empty without a `kind` document column)", {
           "task": "query task", "procedure": "task whose procedure the documents teach (`kind` procedure:<task>)",
           "k": "top-k depth", "n_queries": "queries of the task", "share": "mean share of the top k teaching it",
           "base_share": "documents teaching it / D", "ratio": "share / base_share",
           "ci_low": "lower end of the 95% interval of ratio (bootstrap over queries)",
           "ci_high": "upper end of the 95% interval",
           "chance_low": "2.5% point of ratio for k random documents per query (hypergeometric)",
           "chance_high": "97.5% point", "p_value": "P(count ≥ observed) for k random documents per query"})
def ground_truth(ctx) -> pd.DataFrame:
    rows = []
    for procedure, mask in procedure_masks(ctx).items():
        teaching = int(mask.sum())
        base = teaching / ctx.n_docs
        for position, k in enumerate(ground_truth_ks(ctx)):
            counts = counts_of(ctx, procedure, position)
            for task, task_rows in ctx.task_rows.items():
                n = len(task_rows)
                statistic = share_of(counts, k)
                share = float(statistic(np.bincount(task_rows, minlength=ctx.n_queries).astype(np.float64)))
                low = high = np.nan
                if n >= 2:
                    low, high = statistics.bootstrap_interval([task_rows], statistic, ctx.n_queries,
                                                              ctx.rng(f"ground_truth/{task}/{procedure}/{k}"),
                                                              ctx.n_resamples)
                band = statistics.hypergeometric_sum_interval([k] * n, [teaching] * n, ctx.n_docs)
                p_value = statistics.hypergeometric_sum_sf(counts[task_rows].sum(), [k] * n, [teaching] * n,
                                                           ctx.n_docs)
                rows.append((task, procedure, k, n, share, base, share / base, low / base, high / base,
                             band[0] / (n * k * base), band[1] / (n * k * base), p_value))
    return pd.DataFrame(rows, columns=["task", "procedure", "k", "n_queries", "share", "base_share", "ratio",
                                       "ci_low", "ci_high", "chance_low", "chance_high", "p_value"])


@findings("ground_truth", order=4)
def ground_truth_findings(ctx) -> list[Finding]:
    masks = procedure_masks(ctx)
    ks = ground_truth_ks(ctx)
    k = ctx.findings_k
    found = []
    for task in ctx.reasoning_tasks:
        rows = ctx.task_rows[task]
        if task not in masks or len(rows) < 2:
            continue
        counts = counts_of(ctx, task, ks.index(k))
        base = masks[task].mean()
        statistic = share_of(counts, k)
        weights = statistics.query_weights([rows], ctx.n_queries)
        name = f"ground_truth.{task}"
        low, high, interval_p = statistics.bootstrap_test([rows], statistic, ctx.n_queries, ctx.rng(name),
                                                          ctx.n_resamples, null_value=base)
        share = float(statistic(*weights))
        found.append(Finding(
            name=name, claim=f"The top documents for {task} queries teach the {task} procedure more often than "
                             "random documents do (the demo world's ground truth; Ruis et al.'s procedural "
                             "knowledge finding).",
            effect_label=f"share of the top {k} teaching {task} ÷ its corpus share", paper_direction="greater",
            measure="ratio", effect=share / base, ci_low=float(low) / base, ci_high=float(high) / base,
            p_value=statistics.hypergeometric_sum_two_sided(counts[rows].sum(), [k] * len(rows),
                                                            [int(masks[task].sum())] * len(rows), ctx.n_docs),
            p_value_method=f"two-sided, vs {k} random documents per query (hypergeometric)", n=len(rows),
            parts={"share": share, "base_share": float(base)}, interval_p=interval_p))
    return found
