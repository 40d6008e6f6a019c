"""Counterfactual validation findings from analysis/validation.parquet (numpy, pandas, scipy only; no torch).

validation.parquet has one row per (query, method, set, draw): `set` is `top`/`bottom` (the k documents a
ranking method puts first/last for that query) or `random` (method `random`: R random k-sets drawn once per
run and applied to every query). `delta_logprob` is Δ log p(completion | prompt) after the tail-patch.

Per query and method: the top-k Δ against that query's R random Δ (beats all of them? standardised effect
z = (Δ_top − mean Δ_random) / sd(Δ_random), share of random draws it beats), the same for the bottom-k Δ
(below all of them?). Over queries: means, fractions and medians with 95% intervals from a crossed bootstrap
that resamples queries and random draws independently (the random sets are shared by all queries, so
resampling queries alone would understate the uncertainty that comes from which R sets were drawn).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

RANDOM = "random"
N_BOOTSTRAP = 2000
CONFIDENCE = 0.95
QUERY_COLUMNS = ["query_id", "task", "method", "top_delta", "bottom_delta", "random_mean", "random_sd",
                 "random_min", "random_max", "n_random", "top_beats_all", "bottom_below_all", "top_z", "bottom_z",
                 "top_win_rate", "bottom_win_rate", "top_tokens", "bottom_tokens", "random_tokens_mean"]


# ---------------------------------------------------------------- per query

def random_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Δ of the random draws as a [query × draw] table (queries in first-appearance order)."""
    random = frame[frame["set"] == RANDOM]
    order = list(dict.fromkeys(random["query_id"]))
    return random.pivot(index="query_id", columns="draw", values="delta_logprob").reindex(order)


def win_rate(value: np.ndarray, draws: np.ndarray, above: bool) -> np.ndarray:
    """Share of draws that `value` beats (above: value > draw; else value < draw), ties counting one half."""
    wins = (value[:, None] > draws) if above else (value[:, None] < draws)
    return (wins + 0.5 * (value[:, None] == draws)).mean(axis=1)


def standardised(value: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(value − mean of the draws) / sd of the draws (ddof 1); NaN when the sd is 0 or undefined."""
    sd = draws.std(axis=1, ddof=1) if draws.shape[1] > 1 else np.full(len(draws), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, (value - draws.mean(axis=1)) / sd, np.nan)


def per_query(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (query, ranking method) with its top/bottom Δ against the query's random draws."""
    draws = random_matrix(frame)
    tokens = frame[frame["set"] == RANDOM].groupby("query_id")["set_tokens"].mean()
    tasks = frame.drop_duplicates("query_id").set_index("query_id")["task"]
    rows = []
    for method, part in frame[frame["set"] != RANDOM].groupby("method", sort=False):
        wide = part.pivot(index="query_id", columns="set", values="delta_logprob")
        sizes = part.pivot(index="query_id", columns="set", values="set_tokens")
        ids = [q for q in draws.index if q in wide.index]
        matrix = draws.loc[ids].to_numpy(dtype=np.float64)
        table = pd.DataFrame({"query_id": ids, "task": tasks.loc[ids].to_numpy(), "method": method})
        for side, above in (("top", True), ("bottom", False)):
            value = (wide[side].reindex(ids) if side in wide else pd.Series(np.nan, index=ids)).to_numpy(np.float64)
            table[f"{side}_delta"] = value
            table[f"{side}_z"] = standardised(value, matrix)
            table[f"{side}_win_rate"] = np.where(np.isnan(value), np.nan, win_rate(value, matrix, above))
            table[f"{side}_tokens"] = (sizes[side].reindex(ids).to_numpy(np.float64) if side in sizes
                                       else np.nan)
        table["random_mean"] = matrix.mean(axis=1)
        table["random_sd"] = matrix.std(axis=1, ddof=1) if matrix.shape[1] > 1 else np.nan
        table["random_min"], table["random_max"] = matrix.min(axis=1), matrix.max(axis=1)
        table["n_random"] = matrix.shape[1]
        for name, side, extreme, above in (("top_beats_all", "top", "random_max", True),
                                           ("bottom_below_all", "bottom", "random_min", False)):
            value, bound = table[f"{side}_delta"].to_numpy(), table[extreme].to_numpy()
            beats = value > bound if above else value < bound
            table[name] = pd.array(np.where(np.isnan(value), None, beats), dtype="boolean")   # <NA>: no such set
        table["random_tokens_mean"] = tokens.reindex(ids).to_numpy(np.float64)
        rows.append(table)
    if not rows:
        return pd.DataFrame(columns=QUERY_COLUMNS)
    return pd.concat(rows, ignore_index=True)[QUERY_COLUMNS]


# ---------------------------------------------------------------- over queries, with intervals

def crossed_bootstrap(values: np.ndarray, draws: np.ndarray, statistic, n_boot: int = N_BOOTSTRAP,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile interval of statistic(values[Q], draws[Q, R]) resampling queries and draws independently.

    `statistic` takes arrays with a leading resample axis: values [B, Q], draws [B, Q, R] -> [B]."""
    n_queries, n_draws = draws.shape
    if n_queries == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, n_queries, size=(n_boot, n_queries))
    columns = rng.integers(0, n_draws, size=(n_boot, n_draws))
    resampled = draws[queries[:, :, None], columns[:, None, :]]
    estimates = statistic(values[queries], resampled)
    estimates = estimates[np.isfinite(estimates)]
    if len(estimates) == 0:
        return math.nan, math.nan
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return float(low), float(high)


def _beats_all(values, draws):
    return np.mean(values > draws.max(axis=-1), axis=-1)


def _below_all(values, draws):
    return np.mean(values < draws.min(axis=-1), axis=-1)


def _mean_win(above: bool):
    def statistic(values, draws):
        wins = (values[..., None] > draws) if above else (values[..., None] < draws)
        return np.mean(wins + 0.5 * (values[..., None] == draws), axis=(-1, -2))
    return statistic


def _median_z(values, draws):
    sd = draws.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (values - draws.mean(axis=-1)) / sd, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN: no random spread, the median is NaN
        return np.nanmedian(z, axis=-1)


def _mean_values(values, draws):
    return values.mean(axis=-1)


def _mean_draws(values, draws):
    return draws.mean(axis=(-1, -2))


STATISTICS = {   # name -> (side whose queries are used, statistic of (values, draws))
    "top_delta_mean": ("top", _mean_values), "bottom_delta_mean": ("bottom", _mean_values),
    "random_delta_mean": ("top", _mean_draws),
    "frac_top_beats_all": ("top", _beats_all), "frac_bottom_below_all": ("bottom", _below_all),
    "top_win_rate": ("top", _mean_win(True)), "bottom_win_rate": ("bottom", _mean_win(False)),
    "top_z_median": ("top", _median_z), "bottom_z_median": ("bottom", _median_z),
}


SUMMARY_COLUMNS = ["method", "n_queries", "n_random", "chance_beats_all", "random_sd_mean",
                   *[f"{name}{suffix}" for name in STATISTICS for suffix in ("", "_low", "_high")],
                   "top_tokens_mean", "random_tokens_mean"]


def method_summary(frame: pd.DataFrame, queries: pd.DataFrame | None = None, n_boot: int = N_BOOTSTRAP,
                   seed: int = 0) -> pd.DataFrame:
    """Ranking method -> top-k / bottom-k Δ, random band, fractions beating every draw, standardised effect and
    win rate vs random, each with a 95% crossed-bootstrap interval (columns NAME, NAME_low, NAME_high)."""
    queries = per_query(frame) if queries is None else queries
    draws = random_matrix(frame)
    rows = []
    for method, part in queries.groupby("method", sort=False):
        row = {"method": method, "n_queries": len(part), "n_random": int(draws.shape[1]),
               "chance_beats_all": 1.0 / (draws.shape[1] + 1),
               "random_sd_mean": float(part["random_sd"].mean())}
        for name, (side, statistic) in STATISTICS.items():
            known = part[part[f"{side}_delta"].notna()]
            values = known[f"{side}_delta"].to_numpy(np.float64)
            matrix = draws.loc[known["query_id"]].to_numpy(np.float64)
            if len(values) == 0:
                row[name] = row[f"{name}_low"] = row[f"{name}_high"] = math.nan
                continue
            row[name] = float(statistic(values[None], matrix[None])[0])
            row[f"{name}_low"], row[f"{name}_high"] = crossed_bootstrap(values, matrix, statistic, n_boot, seed)
        row["top_tokens_mean"] = float(part["top_tokens"].mean())
        row["random_tokens_mean"] = float(part["random_tokens_mean"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, pd.DataFrame]:
    """{'validation_queries': per (query, method), 'validation_summary': per method} from validation.parquet."""
    if frame is None or frame.empty:
        return {"validation_queries": pd.DataFrame(columns=QUERY_COLUMNS),
                "validation_summary": pd.DataFrame(columns=SUMMARY_COLUMNS)}
    queries = per_query(frame)
    summary = method_summary(frame, queries, n_boot=n_boot, seed=seed)
    return {"validation_queries": queries, "validation_summary": summary.reindex(columns=SUMMARY_COLUMNS)}
