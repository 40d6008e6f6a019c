"""The linear datamodeling score (LDS; Park et al. 2023, TRAK). numpy/scipy only (no torch).

For M document sets S_m and one query, LDS = Spearman correlation across the sets between the measured response
Δ_m (e.g. the PBRF response of log p(completion)) and a method's prediction Σ_{d∈S_m} score(d). Ties get average
ranks; a query whose measured or predicted values are all equal has an undefined LDS (NaN).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def lds_per_query(measured: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """measured, predicted: [M sets, Q queries] -> [Q] Spearman across sets (NaN where a column is constant).

    Ranks along the set axis (scipy.stats.rankdata, average ties), then Pearson of the rank columns."""
    measured, predicted = np.asarray(measured, np.float64), np.asarray(predicted, np.float64)
    if measured.shape != predicted.shape or measured.ndim != 2:
        raise ValueError(f"measured {measured.shape} and predicted {predicted.shape} must both be [M sets, Q]")
    rx = stats.rankdata(measured, axis=0)
    ry = stats.rankdata(predicted, axis=0)
    rx, ry = rx - rx.mean(0), ry - ry.mean(0)
    denominator = np.sqrt((rx * rx).sum(0) * (ry * ry).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(0) / denominator, np.nan)


def _spearman_from_ranks(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    rx, ry = rx - rx.mean(0), ry - ry.mean(0)
    denominator = np.sqrt((rx * rx).sum(0) * (ry * ry).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(0) / denominator, np.nan)


def crossed_bootstrap_lds(measured: np.ndarray, predictions: list[np.ndarray], n_boot: int,
                          seed: int) -> np.ndarray:
    """[n_boot, P] mean LDS over queries of each prediction, resampling sets (rows) and queries (columns)
    independently with replacement, the same draws for every prediction (so differences are paired).

    Per resample: Spearman across the resampled sets for every query, then the mean over the resampled queries
    (queries with an undefined LDS are left out of that mean)."""
    n_sets, n_queries = measured.shape
    rng = np.random.default_rng(seed)
    set_draws = rng.integers(0, n_sets, size=(n_boot, n_sets))
    query_draws = rng.integers(0, n_queries, size=(n_boot, n_queries))
    out = np.full((n_boot, len(predictions)), np.nan)
    for b in range(n_boot):
        rx = stats.rankdata(measured[set_draws[b]], axis=0)
        for p, predicted in enumerate(predictions):
            values = _spearman_from_ranks(rx, stats.rankdata(predicted[set_draws[b]], axis=0))[query_draws[b]]
            if np.isfinite(values).any():
                out[b, p] = np.nanmean(values)
    return out
