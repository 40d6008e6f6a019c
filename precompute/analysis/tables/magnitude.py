"""How much of a query's influence its top documents carry: cumulative influence of the top p% of documents per
sign (raw, relative and per nat of completion information, as Ruis et al. compare it), power-law fits of the top
positive scores, per-task means with bootstrap intervals, and the paper's magnitude finding."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from precompute.analysis import ranking, statistics
from precompute.analysis.context import stacked_frame
from precompute.analysis.registry import findings, row_statistic, table
from precompute.analysis.statistics import Finding

PERCENTILES = np.round(np.geomspace(1e-3, 100.0, 26), 6)   # 5 points per decade; includes 0.1, 1 and 10
POWER_LAW_N = 500                                          # top positive scores used for the power-law fit
FINDING_PERCENTILE = 1.0                                   # the magnitude finding compares the top 1%


def magnitude_curve(magnitudes_desc: np.ndarray, percentiles: np.ndarray = PERCENTILES):
    """Cumulative influence of the top p% of one sign's scores (by magnitude) and its share of that sign's
    total; the top p% holds ceil(p/100 · n) documents (at least one when n > 0)."""
    n = len(magnitudes_desc)
    cumsum = np.concatenate([[0.0], np.cumsum(magnitudes_desc, dtype=np.float64)])
    counts = np.clip(np.ceil(percentiles / 100.0 * n - 1e-9).astype(np.int64), min(n, 1), n)
    cumulative = cumsum[counts]
    total = cumsum[-1]
    relative = cumulative / total if total > 0 else np.full(len(percentiles), np.nan)
    return cumulative, relative


def power_law_fit(scores_desc: np.ndarray) -> tuple[float, float, float, int]:
    """Least-squares fit of log(score) = intercept + slope · log(rank) over positive scores in descending
    order (rank 1 = largest); returns slope, intercept, r², number of points."""
    values = np.asarray(scores_desc, dtype=np.float64)
    values = values[values > 0]
    n = len(values)
    if n < 2:
        return math.nan, math.nan, math.nan, n
    x = np.log(np.arange(1, n + 1, dtype=np.float64))
    y = np.log(values)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    spread = np.sum(np.square(y - y.mean()))
    r2 = 1.0 - np.sum(np.square(residual)) / spread if spread > 0 else 1.0
    return float(slope), float(intercept), float(r2), n


@row_statistic("magnitude")
def magnitude_row(ctx, row) -> dict:
    ordered = row.sorted_values.astype(np.float64)
    positive = ordered[ordered > 0]
    negative = -ordered[ordered < 0][::-1]
    return {"positive": magnitude_curve(positive), "negative": magnitude_curve(negative),
            "power_law": power_law_fit(positive[:POWER_LAW_N])}


@table("magnitude", "per query, sign and percentile: cumulative influence of the top p% documents", {
    "query_id": "query id", "task": "query task", "sign": "`positive` or `negative` (stored as magnitudes)",
    "percentile": "p in (0, 100], a fixed log-spaced grid (5 points per decade)",
    "cumulative": "sum of the top p% of that sign's scores by magnitude (ceil(p/100 · n) documents)",
    "relative": "cumulative / total of that sign",
    "per_nat": "cumulative / the query's completion nats; NaN for low-information queries (< MIN_NATS nats)"})
def magnitude(ctx) -> pd.DataFrame:
    parts = []
    for index, found in enumerate(ctx.rows["magnitude"]):
        for sign in ("positive", "negative"):
            cumulative, relative = found[sign]
            parts.append({"query_id": ctx.query_ids[index], "task": ctx.tasks[index], "sign": sign,
                          "percentile": PERCENTILES, "cumulative": cumulative, "relative": relative,
                          "per_nat": ranking.per_nat(cumulative, ctx.nats[index])})
    return stacked_frame(parts, ["query_id", "task", "sign", "percentile", "cumulative", "relative", "per_nat"])


def curves(ctx, sign: str, value: str) -> np.ndarray:
    """[Q, len(PERCENTILES)] of `cumulative`, `relative` or `per_nat` for one sign."""
    index = {"cumulative": 0, "relative": 1}
    stacked = np.vstack([found[sign][index.get(value, 0)] for found in ctx.rows["magnitude"]])
    return ranking.per_nat(stacked, ctx.nats) if value == "per_nat" else stacked


def weighted_mean(values: np.ndarray):
    """statistic(*weights) = Σ_q w_q values_q / Σ_q w_q with w the groups' weights summed; `values` [Q] or [Q, P]
    (a vector statistic comes out as [P, ...resamples], the layout scipy.stats.bootstrap expects). Rows that are
    NaN must carry no weight."""
    filled = np.nan_to_num(np.asarray(values, dtype=np.float64))

    def statistic(*weights):
        w = sum(weights)
        total = w.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if filled.ndim == 1:
                return (w @ filled) / total
            return np.moveaxis((w @ filled) / total[..., None], -1, 0)
    return statistic


@table("magnitude_by_task", "per task, sign and percentile: mean cumulative influence over the task's queries", {
    "task": "query task", "sign": "`positive` or `negative`", "percentile": "p",
    "cumulative_mean": "mean cumulative", "relative_mean": "mean relative",
    "per_nat_mean": "mean per_nat over the task's queries with enough information",
    "per_nat_ci_low": "lower end of the 95% interval of per_nat_mean (bootstrap over queries)",
    "per_nat_ci_high": "upper end of the 95% interval", "n_queries": "queries of the task",
    "n_low_information": "queries left out of per_nat (completion < MIN_NATS nats)"})
def magnitude_by_task(ctx) -> pd.DataFrame:
    frames = []
    for sign in ("positive", "negative"):
        cumulative, relative, per_nat = (curves(ctx, sign, value) for value in ("cumulative", "relative", "per_nat"))
        for task, rows in ctx.task_rows.items():
            informative = rows[~ctx.low_information[rows]]
            low = high = np.full(len(PERCENTILES), np.nan)
            if len(informative) >= 2:
                low, high = statistics.bootstrap_interval([informative], weighted_mean(per_nat), ctx.n_queries,
                                                          ctx.rng(f"magnitude_by_task/{sign}/{task}"),
                                                          ctx.n_resamples)
            frames.append(pd.DataFrame({
                "task": task, "sign": sign, "percentile": PERCENTILES,
                "cumulative_mean": cumulative[rows].mean(axis=0), "relative_mean": np.nanmean(relative[rows], axis=0)
                if np.isfinite(relative[rows]).any() else np.nan,
                "per_nat_mean": per_nat[informative].mean(axis=0) if len(informative) else np.nan,
                "per_nat_ci_low": low, "per_nat_ci_high": high, "n_queries": len(rows),
                "n_low_information": int(len(rows) - len(informative))}))
    return pd.concat(frames, ignore_index=True)


@table("power_law", "per query: power-law fit of its top positive scores", {
    "query_id": "query id", "task": "query task", "slope": "slope of log score vs log rank",
    "intercept": "intercept of that fit", "r2": "r² of the fit", "n_fit": "points fitted (top 500 positive scores)"})
def power_law(ctx) -> pd.DataFrame:
    fits = [found["power_law"] for found in ctx.rows["magnitude"]]
    return pd.DataFrame({"query_id": ctx.query_ids, "task": ctx.tasks, "slope": [f[0] for f in fits],
                         "intercept": [f[1] for f in fits], "r2": [f[2] for f in fits],
                         "n_fit": np.asarray([f[3] for f in fits], dtype=np.int64)})


@table("power_law_by_task", "per task: mean power-law slope with a bootstrap interval over queries", {
    "task": "query task", "slope_mean": "mean slope over queries with a fit",
    "slope_ci_low": "lower end of the 95% interval (bootstrap over queries)",
    "slope_ci_high": "upper end", "r2_mean": "mean r²", "n_queries": "queries with a fit"})
def power_law_by_task(ctx) -> pd.DataFrame:
    fits = np.asarray([found["power_law"][:3] for found in ctx.rows["magnitude"]], dtype=np.float64)
    rows = []
    for task, task_rows in ctx.task_rows.items():
        fitted = task_rows[np.isfinite(fits[task_rows, 0])]
        low = high = np.nan
        if len(fitted) >= 2:
            low, high = statistics.bootstrap_interval([fitted], weighted_mean(fits[:, 0]), ctx.n_queries,
                                                      ctx.rng(f"power_law_by_task/{task}"), ctx.n_resamples)
        rows.append((task, float(np.mean(fits[fitted, 0])) if len(fitted) else np.nan, float(low), float(high),
                     float(np.mean(fits[fitted, 2])) if len(fitted) else np.nan, len(fitted)))
    return pd.DataFrame(rows, columns=["task", "slope_mean", "slope_ci_low", "slope_ci_high", "r2_mean",
                                       "n_queries"])


PER_NAT_LABEL = f"mean per-nat influence of the top {FINDING_PERCENTILE:g}% positive documents, reasoning ÷ factual"


def reasoning_over_factual(per_nat: np.ndarray):
    """statistic(*weights) of magnitude.per_nat_top1: the weighted mean of `per_nat` over the reasoning groups ÷ over
    the factual group (the last); shared with the two-run differences (precompute.analysis.run_difference)."""
    mean = weighted_mean(per_nat)

    def ratio(*w):
        with np.errstate(invalid="ignore", divide="ignore"):
            return mean(*w[:-1]) / mean(w[-1])
    return ratio


@findings("magnitude", order=3)
def magnitude_findings(ctx) -> list[Finding]:
    column = int(np.flatnonzero(PERCENTILES == FINDING_PERCENTILE)[0])
    per_nat = curves(ctx, "positive", "per_nat")[:, column]
    usable = ~ctx.low_information & np.isfinite(per_nat)
    groups = ctx.reasoning_and_factual(usable)
    if groups is None:
        return []
    mean = weighted_mean(per_nat)
    ratio = reasoning_over_factual(per_nat)
    weights = statistics.query_weights(groups, ctx.n_queries)
    name = "magnitude.per_nat_top1"
    low, high, interval_p = statistics.bootstrap_test(groups, ratio, ctx.n_queries, ctx.rng(name), ctx.n_resamples,
                                                      null_value=1.0)
    involved = np.concatenate([ctx.task_rows[t] for t in ctx.task_rows if t == "factual" or t in ctx.reasoning_tasks])
    excluded = int(ctx.low_information[involved].sum())
    return [Finding(
        name=name, claim="Reasoning relies less on individual documents than factual recall: the top documents carry "
                         "less influence per nat of completion information (Ruis et al.).",
        effect_label=PER_NAT_LABEL,
        paper_direction="less", measure="ratio", effect=float(ratio(*weights)), ci_low=float(low),
        ci_high=float(high), p_value=statistics.permutation_p_value(groups, ratio, ctx.n_queries,
                                                                     ctx.rng(name + "/permutation"), ctx.n_resamples),
        p_value_method=statistics.PERMUTATION, n=int(sum(len(g) for g in groups)), interval_p=interval_p,
        parts={"reasoning": float(mean(*weights[:-1])), "factual": float(mean(weights[-1]))},
        notes=[f"{excluded} queries left out: completion carries < {ranking.MIN_NATS:g} nats"] if excluded else [])]


def top_influence(ctx) -> np.ndarray:
    """[Q] summed influence of each query's top FINDING_PERCENTILE% positive documents."""
    column = int(np.flatnonzero(PERCENTILES == FINDING_PERCENTILE)[0])
    return curves(ctx, "positive", "cumulative")[:, column]


def information_regression(log_influence: np.ndarray, log_nats: np.ndarray):
    """statistic(*weights) -> [3, ...]: the weighted least-squares fit ln influence = a + b·ln nats + c·reasoning
    (rows: a, b, c), each query weighted by how often it is drawn; the last weights are the factual group's
    (reasoning = 0), all others reasoning (= 1), so permuting queries between groups moves their indicator.
    exp(c) is the reasoning ÷ factual ratio of top influence at equal information. Rows outside the fit must
    carry no weight."""
    x, y = np.nan_to_num(log_nats), np.nan_to_num(log_influence)
    factual_design = np.stack([np.ones_like(x), x, np.zeros_like(x)], axis=1)
    reasoning_design = np.stack([np.ones_like(x), x, np.ones_like(x)], axis=1)

    def statistic(*weights):
        reasoning, factual = sum(weights[:-1]), weights[-1]
        gram = (np.einsum("...q,qi,qj->...ij", reasoning, reasoning_design, reasoning_design)
                + np.einsum("...q,qi,qj->...ij", factual, factual_design, factual_design))
        moment = (np.einsum("...q,qi,q->...i", reasoning, reasoning_design, y)
                  + np.einsum("...q,qi,q->...i", factual, factual_design, y))
        with np.errstate(invalid="ignore", divide="ignore"):
            singular = np.abs(np.linalg.det(gram)) < 1e-12 * np.maximum(1.0, np.abs(gram).max(axis=(-1, -2))) ** 3
            solved = np.linalg.solve(np.where(singular[..., None, None], np.eye(3), gram), moment[..., None])[..., 0]
        return np.moveaxis(np.where(singular[..., None], np.nan, solved), -1, 0)
    return statistic


@table("magnitude_information", "per query: its top-1% positive influence against its completion's information "
       "(the data of the information-adjusted magnitude finding)", {
           "query_id": "query id", "task": "query task", "nats": "completion information (nats)",
           "top_influence": "summed influence of the query's top 1% positive documents",
           "log_nats": "ln(nats); NaN when nats ≤ 0 or unknown",
           "log_top_influence": "ln(top_influence); NaN when ≤ 0",
           "fitted": "ln top influence predicted by the fit a + b·ln nats + c·reasoning (NaN outside the fit)",
           "in_fit": "whether the query enters the fit (reasoning or factual task, both logs defined)"})
def magnitude_information(ctx) -> pd.DataFrame:
    data = information_data(ctx)
    with np.errstate(invalid="ignore"):
        reasoning = (data["in_fit"] & data["reasoning"]).astype(np.float64)
        factual = (data["in_fit"] & ~data["reasoning"]).astype(np.float64)
        coefficients = information_regression(data["log_influence"], data["log_nats"])(reasoning, factual)
        fitted = coefficients[0] + coefficients[1] * data["log_nats"] + coefficients[2] * data["reasoning"]
    return pd.DataFrame({"query_id": ctx.query_ids, "task": ctx.tasks, "nats": ctx.nats,
                         "top_influence": data["influence"], "log_nats": data["log_nats"],
                         "log_top_influence": data["log_influence"], "fitted": np.where(data["in_fit"], fitted, np.nan),
                         "in_fit": data["in_fit"]})


def information_data(ctx) -> dict:
    influence = top_influence(ctx)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_nats = np.where(ctx.nats > 0, np.log(np.where(ctx.nats > 0, ctx.nats, 1.0)), np.nan)
        log_influence = np.where(influence > 0, np.log(np.where(influence > 0, influence, 1.0)), np.nan)
    reasoning = np.isin(ctx.tasks, ctx.reasoning_tasks)
    compared = reasoning | (ctx.tasks == "factual")
    return {"influence": influence, "log_nats": log_nats, "log_influence": log_influence, "reasoning": reasoning,
            "in_fit": compared & np.isfinite(log_nats) & np.isfinite(log_influence)}


@findings("magnitude_information", order=3)
def information_adjusted_findings(ctx) -> list[Finding]:
    data = information_data(ctx)
    usable = data["in_fit"]
    groups = ctx.reasoning_and_factual(usable)
    if groups is None:
        return []
    reasoning, factual = groups[:-1], groups[-1]
    fit = information_regression(data["log_influence"], data["log_nats"])

    def adjusted_ratio(*w):
        return np.exp(fit(*w)[2])
    name = "magnitude.information_adjusted"
    weights = statistics.query_weights(groups, ctx.n_queries)
    intercept, slope, shift = (float(v) for v in fit(*weights))
    low, high, interval_p = statistics.bootstrap_test(groups, adjusted_ratio, ctx.n_queries, ctx.rng(name),
                                                      ctx.n_resamples, null_value=1.0)
    nats_r = ctx.nats[np.concatenate(reasoning)]
    compared = np.isin(ctx.tasks, ctx.reasoning_tasks) | (ctx.tasks == "factual")
    left_out = int(np.sum(compared & ~usable))
    overlap = int(np.sum((ctx.nats[factual] >= nats_r.min()) & (ctx.nats[factual] <= nats_r.max())))
    return [Finding(
        name=name, claim="Reasoning relies less on individual documents than factual recall: its top documents "
                         "carry less influence than factual ones at equal completion information (Ruis et al.).",
        effect_label=f"reasoning ÷ factual influence of the top {FINDING_PERCENTILE:g}% positive documents at equal "
                     "nats (exp of the reasoning coefficient in ln influence = a + b·ln nats + c·reasoning)",
        paper_direction="less", measure="ratio", effect=math.exp(shift), ci_low=float(low), ci_high=float(high),
        p_value=statistics.permutation_p_value(groups, adjusted_ratio, ctx.n_queries, ctx.rng(name + "/permutation"),
                                               ctx.n_resamples),
        p_value_method=statistics.PERMUTATION, n=int(sum(len(g) for g in groups)), interval_p=interval_p,
        parts={"slope_log_nats": slope, "intercept": intercept, "reasoning_coefficient": shift},
        notes=[f"{overlap} of {len(factual)} factual queries lie within the reasoning queries' nats range "
               f"[{nats_r.min():.3g}, {nats_r.max():.3g}]; outside it the adjustment extrapolates the fitted "
               "slope"] + ([f"{left_out} queries left out: nats or top influence not positive"] if left_out else []))]
