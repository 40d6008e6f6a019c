"""The score kinds a run serves (`Run.score_row`): raw, per nat of the completion, normalised by ‖G_d‖. numpy only.

Per nat divides a query's scores by its completion's information, −log p(completion | prompt) in nats; queries
below MIN_NATS are too certain to divide by and get NaN.
"""
from __future__ import annotations

import numpy as np

SCORE_KINDS = ("raw", "per_nat", "normalized")
MIN_NATS = 0.01  # below this (p(completion) > 0.99) a completion is too certain to divide by (see per_nat)


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
