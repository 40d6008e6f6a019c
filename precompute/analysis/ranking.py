"""The one ranking helper: top / bottom k columns of a score row, and scores per nat with one guard.

Ties are broken by column index (lower first) on both sides, so a partial ranking is exactly the prefix of a
full stable sort, whichever path computed it. numpy only.
"""
from __future__ import annotations

import numpy as np

MIN_NATS = 0.01  # below this (p(completion) > 0.99) a completion is too certain to divide by (see per_nat)


def _stable_descending(values: np.ndarray) -> np.ndarray:
    """All column indices, highest value first, ties by index (NaN last, by index). One fast (unstable) sort; then
    only the positions holding equal values are put in index order (float32 rows of a million documents have a
    few hundred ties, so this is much cheaper than a stable sort of everything)."""
    order = np.argsort(-values)
    ordered = values[order]
    n_numbers = len(order) - int(np.count_nonzero(np.isnan(ordered)))
    order[n_numbers:] = np.sort(order[n_numbers:])
    equal = ordered[1:n_numbers] == ordered[:n_numbers - 1]
    if equal.any():
        tied = np.flatnonzero(np.concatenate([equal, [False]]) | np.concatenate([[False], equal]))
        order[tied] = order[tied][np.lexsort((order[tied], -ordered[tied]))]
    return order


def top_columns(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest values, descending; ties by index; NaN never ranks above a number.

    One argpartition, then a stable sort of the chosen k (the full stable sort when k is a large share)."""
    values = np.asarray(values)
    n = values.shape[-1]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k * 4 >= n:
        return _stable_descending(values)[:k].astype(np.int64)
    part = np.argpartition(-values, k - 1)[:k]
    threshold = values[part].min()
    if np.isnan(threshold):
        return _stable_descending(values)[:k].astype(np.int64)
    above = np.flatnonzero(values > threshold)
    ties = np.flatnonzero(values == threshold)[:k - len(above)]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -values[chosen]))].astype(np.int64)


def top_and_bottom(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the k highest (descending) and the k lowest (ascending) values."""
    values = np.asarray(values)
    return top_columns(values, k), top_columns(-values, k)


def low_information(nats, min_nats: float = MIN_NATS) -> np.ndarray:
    """True where a completion carries fewer than `min_nats` nats (or an unknown number): per-nat values of
    such queries are flagged and left out, never divided."""
    nats = np.asarray(nats, dtype=np.float64)
    return ~(nats >= min_nats)


def per_nat(scores, nats, min_nats: float = MIN_NATS) -> np.ndarray:
    """Scores divided by their query's completion information in nats (float64); NaN for low-information queries.

    `nats` is one number per leading row of `scores` (a scalar for one row of scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    nats = np.asarray(nats, dtype=np.float64)
    safe = np.where(low_information(nats, min_nats), np.nan, nats)
    return scores / safe.reshape(safe.shape + (1,) * (scores.ndim - safe.ndim))
