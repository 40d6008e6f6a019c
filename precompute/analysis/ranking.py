"""The one ranking helper: top / bottom k columns of a score row, and scores per nat with one guard.

Ties are broken by column index (lower first) on both sides, so a partial ranking is exactly the prefix of a
full stable sort, whichever path computed it. numpy only.
"""
from __future__ import annotations

import numpy as np

# the per-nat score kind belongs to the run-directory contract (the reader serves it); re-exported here
from precompute.rundir.score_kinds import MIN_NATS, low_information, per_nat  # noqa: E402,F401


def _stable_descending(values: np.ndarray) -> np.ndarray:
    """All column indices, highest value first, ties by index (NaN last, by index). One fast (unstable) sort; then
    only the positions holding equal values are put in index order (float32 rows of a million documents have a
    few hundred ties, so this is much cheaper than a stable sort of everything)."""
    order = np.argsort(-values)
    ordered = values[order]
    n_numbers = len(order) - int(np.count_nonzero(np.isnan(ordered)))
    order[n_numbers:] = np.sort(order[n_numbers:])
    equal = ordered[1:n_numbers] == ordered[:max(n_numbers - 1, 0)]   # (an all-NaN row has no numbers)
    if equal.any():
        tied = np.flatnonzero(np.concatenate([equal, [False]]) | np.concatenate([[False], equal]))
        order[tied] = order[tied][np.lexsort((order[tied], -ordered[tied]))]
    return order


SAMPLE_STRIDE = 32  # the candidate threshold is guessed from every 32nd value of the row


def _candidates(values: np.ndarray, k: int) -> np.ndarray | None:
    """Columns (ascending) that surely hold the k highest values: every column whose value reaches a threshold
    guessed from a strided sample's numbers, when at least k values reach it (then the k-th highest is at or
    above the threshold, so none of the top k is left out). None when the guess falls short."""
    sample = values[::SAMPLE_STRIDE]
    expected = 2 * k * len(sample) // values.shape[-1] + 16   # about 2k + 16 * stride columns reach the guess
    numbers = sample[~np.isnan(sample)]
    if expected >= len(numbers):
        return None
    guess = np.partition(numbers, len(numbers) - expected)[len(numbers) - expected]
    chosen = np.flatnonzero(values >= guess)
    return chosen if len(chosen) >= k else None


def _partial_top(values: np.ndarray, k: int) -> np.ndarray:
    """top_columns by one argpartition of the whole row, then a stable sort of the chosen k."""
    part = np.argpartition(-values, k - 1)[:k]
    threshold = values[part].min()
    if np.isnan(threshold):
        return _stable_descending(values)[:k].astype(np.int64)
    above = np.flatnonzero(values > threshold)
    ties = np.flatnonzero(values == threshold)[:k - len(above)]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -values[chosen]))].astype(np.int64)


def top_columns(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest values, descending; ties by index; NaN never ranks above a number.

    The columns at or above a sampled threshold (a few k of them; one comparison pass over the row), ranked by
    one argpartition and a stable sort of the chosen k; the whole row's argpartition when the sample's guess
    falls short; the full stable sort when k is a large share."""
    values = np.asarray(values)
    n = values.shape[-1]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k * 4 >= n:
        return _stable_descending(values)[:k].astype(np.int64)
    candidates = _candidates(values, k)
    if candidates is None:
        return _partial_top(values, k)
    return candidates[_partial_top(values[candidates], k)]


def top_and_bottom(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the k highest (descending) and the k lowest (ascending) values."""
    values = np.asarray(values)
    return top_columns(values, k), top_columns(-values, k)


def layer_sums(layer_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per layer ([L, D] scores of one query), the sum of the positive and of the negative scores over all
    documents (float64)."""
    per_layer = np.asarray(layer_scores, dtype=np.float32)
    positive = np.where(per_layer > 0, per_layer, 0).sum(axis=1, dtype=np.float64)
    negative = np.where(per_layer < 0, per_layer, 0).sum(axis=1, dtype=np.float64)
    return positive, negative
