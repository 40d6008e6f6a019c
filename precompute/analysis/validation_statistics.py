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
from scipy import stats

from precompute.analysis import statistics

RANDOM = "random"
N_BOOTSTRAP = 2000
CONFIDENCE = 0.95
QUERY_COLUMNS = ["query_id", "task", "method", "top_delta", "bottom_delta", "random_mean", "random_sd",
                 "random_min", "random_max", "n_random", "top_beats_all", "bottom_below_all", "top_z", "bottom_z",
                 "top_win_rate", "bottom_win_rate", "top_tokens", "bottom_tokens", "random_tokens_mean",
                 "top_win_rate_per_token"]


# ---------------------------------------------------------------- per query

def random_matrix(frame: pd.DataFrame, per_token: bool = False) -> pd.DataFrame:
    """Δ of the random draws as a [query × draw] table (queries in first-appearance order); per_token: Δ divided
    by the random set's tokens."""
    random = frame[frame["set"] == RANDOM]
    if per_token:
        random = random.assign(delta_logprob=random["delta_logprob"] / random["set_tokens"])
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
        per_token = table["top_delta"].to_numpy(np.float64) / table["top_tokens"].to_numpy(np.float64)
        table["top_win_rate_per_token"] = np.where(np.isnan(per_token), np.nan, win_rate(
            per_token, random_matrix(frame, per_token=True).loc[ids].to_numpy(np.float64), True))
        rows.append(table)
    if not rows:
        return pd.DataFrame(columns=QUERY_COLUMNS)
    return pd.concat(rows, ignore_index=True)[QUERY_COLUMNS]


# ---------------------------------------------------------------- over queries, with intervals

def crossed_bootstrap(values: np.ndarray, draws: np.ndarray, statistic, n_boot: int = N_BOOTSTRAP,
                      seed: int = 0, null: float | None = None):
    """Percentile interval of statistic(values[Q], draws[Q, R]) resampling queries and draws independently; with
    `null`, also its interval p (statistics.interval_p_value of the plain percentile interval).

    `statistic` takes arrays with a leading resample axis: values [B, Q], draws [B, Q, R] -> [B]."""
    n_queries, n_draws = draws.shape
    if n_queries == 0:
        return (math.nan, math.nan) if null is None else (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, n_queries, size=(n_boot, n_queries))
    columns = rng.integers(0, n_draws, size=(n_boot, n_draws))
    resampled = draws[queries[:, :, None], columns[:, None, :]]
    estimates = statistic(values[queries], resampled)
    finite = estimates[np.isfinite(estimates)]
    if len(finite) == 0:
        low = high = math.nan
    else:
        tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
        low, high = (float(v) for v in np.percentile(finite, [tail, 100.0 - tail]))
    if null is None:
        return low, high
    return low, high, statistics.interval_p_value(estimates, null, None, max_undefined=1.0)


def exact_interval(successes: int, trials: int) -> tuple[float, float]:
    """Clopper–Pearson 95% interval of a binomial proportion (scipy.stats.binomtest(...).proportion_ci)."""
    if trials <= 0:
        return math.nan, math.nan
    interval = stats.binomtest(int(successes), int(trials)).proportion_ci(CONFIDENCE, method="exact")
    return float(interval.low), float(interval.high)


def exact_p_value(successes: int, trials: int, chance: float) -> float:
    """Two-sided p matching the Clopper–Pearson interval: 2 × the smaller binomial tail at `chance`."""
    if trials <= 0:
        return math.nan
    upper, lower = stats.binom.sf(successes - 1, trials, chance), stats.binom.cdf(successes, trials, chance)
    return float(min(1.0, 2 * min(upper, lower)))


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


STATISTICS = {   # name -> (side whose queries are used, statistic of (values, draws), Δ per set-token?)
    "top_delta_mean": ("top", _mean_values, False), "bottom_delta_mean": ("bottom", _mean_values, False),
    "random_delta_mean": ("top", _mean_draws, False),
    "frac_top_beats_all": ("top", _beats_all, False), "frac_bottom_below_all": ("bottom", _below_all, False),
    "top_win_rate": ("top", _mean_win(True), False), "bottom_win_rate": ("bottom", _mean_win(False), False),
    "top_z_median": ("top", _median_z, False), "bottom_z_median": ("bottom", _median_z, False),
    "top_win_rate_per_token": ("top", _mean_win(True), True),
}
NULLS = {"frac_top_beats_all": "chance", "frac_bottom_below_all": "chance", "top_z_median": 0.0,
         "top_win_rate": 0.5, "bottom_win_rate": 0.5, "top_win_rate_per_token": 0.5}
EXACT = {   # name -> (successes over trials): share of queries, or of (query, draw) pairs (ties ½, rounded down)
    "frac_top_beats_all": "queries", "frac_bottom_below_all": "queries", "top_win_rate": "pairs",
    "bottom_win_rate": "pairs", "top_win_rate_per_token": "pairs"}


SUMMARY_COLUMNS = ["method", "n_queries", "n_random", "chance_beats_all", "random_sd_mean",
                   *[f"{name}{suffix}" for name in STATISTICS for suffix in ("", "_low", "_high")],
                   *[f"{name}_p" for name in NULLS],
                   *[f"{name}_exact_{end}" for name in EXACT for end in ("low", "high")],
                   "top_tokens_mean", "random_tokens_mean"]


def method_summary(frame: pd.DataFrame, queries: pd.DataFrame | None = None, n_boot: int = N_BOOTSTRAP,
                   seed: int = 0) -> pd.DataFrame:
    """Ranking method -> top-k / bottom-k Δ, random band, fractions beating every draw, standardised effect and
    win rates vs random (Δ, and Δ per set-token), each with a 95% crossed-bootstrap interval (columns NAME,
    NAME_low, NAME_high), its interval p against no effect (NAME_p) and, for shares, the exact Clopper–Pearson
    interval (NAME_exact_low/high)."""
    queries = per_query(frame) if queries is None else queries
    matrices = {False: random_matrix(frame), True: random_matrix(frame, per_token=True)}
    rows = []
    for method, part in queries.groupby("method", sort=False):
        n_draws = int(matrices[False].shape[1])
        row = {"method": method, "n_queries": len(part), "n_random": n_draws, "chance_beats_all": 1.0 / (n_draws + 1),
               "random_sd_mean": float(part["random_sd"].mean())}
        for name, (side, statistic, per_token) in STATISTICS.items():
            known = part[part[f"{side}_delta"].notna()]
            values = known[f"{side}_delta"].to_numpy(np.float64)
            if per_token:
                values = values / known[f"{side}_tokens"].to_numpy(np.float64)
            matrix = matrices[per_token].loc[known["query_id"]].to_numpy(np.float64)
            null = NULLS.get(name)
            null = row["chance_beats_all"] if null == "chance" else null
            if len(values) == 0:
                row.update({name: math.nan, f"{name}_low": math.nan, f"{name}_high": math.nan})
                row.update({f"{name}_p": math.nan} if null is not None else {})
                row.update({f"{name}_exact_low": math.nan, f"{name}_exact_high": math.nan} if name in EXACT else {})
                continue
            row[name] = float(statistic(values[None], matrix[None])[0])
            found = crossed_bootstrap(values, matrix, statistic, n_boot, seed, null)
            row[f"{name}_low"], row[f"{name}_high"] = found[:2]
            if null is not None:
                row[f"{name}_p"] = found[2]
            if name in EXACT:
                trials = len(values) * (matrix.shape[1] if EXACT[name] == "pairs" else 1)
                row[f"{name}_exact_low"], row[f"{name}_exact_high"] = exact_interval(
                    int(math.floor(row[name] * trials + 1e-9)), trials)
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
