"""ranking.top_columns' candidate path (columns at or above a threshold guessed from a strided sample) gives the
same columns as a full stable sort: on random rows with ties and NaN, on adversarial rows (sorted, constant,
mostly NaN) where the guess falls short, and on every row of the demo run when it is there."""
from pathlib import Path

import numpy as np
import pytest

from precompute.analysis import ranking
from precompute.rundir.reader import read_run

DEMO = Path(__file__).resolve().parents[2] / "runs" / "demo"


def stable_reference(values: np.ndarray, k: int) -> np.ndarray:
    """The k first columns of a full stable sort, highest first (NaN after every number)."""
    return np.argsort(-np.asarray(values), kind="stable")[:k]


def assert_both_sides(values: np.ndarray, ks) -> None:
    for k in ks:
        top, bottom = ranking.top_and_bottom(values, k)
        np.testing.assert_array_equal(top, stable_reference(values, k))
        np.testing.assert_array_equal(bottom, stable_reference(-values, k))


def test_candidate_path_equals_a_full_stable_sort_with_ties_and_nan():
    rng = np.random.default_rng(11)
    n = 40_000
    tied = rng.integers(-30, 30, n).astype(np.float32)                  # ~700 copies of each value
    rounded = np.round(rng.standard_normal(n), 2)
    rounded[rng.random(n) < 0.05] = np.nan
    for values in (tied, rounded, rng.standard_normal(n).astype(np.float32)):
        assert ranking._candidates(values, 200) is not None              # the sampled path is the one tested
        assert_both_sides(values, (1, 5, 50, 200, 1000, 9_999))


def test_a_guess_that_falls_short_falls_back_to_the_whole_row():
    n = 40_000
    mostly_nan = np.full(n, np.nan)
    mostly_nan[::1000] = np.arange(40.0)
    assert ranking._candidates(mostly_nan, 50) is None
    constant = np.zeros(n, dtype=np.float32)
    ascending = np.arange(n, dtype=np.float64)
    for values in (mostly_nan, constant, ascending, ascending[::-1].copy()):
        assert_both_sides(values, (1, 50, 200))


@pytest.mark.skipif(not (DEMO / "scores.npy").exists(), reason="runs/demo not built")
def test_every_demo_row_and_score_kind_equals_the_full_sort():
    run = read_run(DEMO)
    for row in range(run.n_queries):
        for kind in ("raw", "per_nat", "normalized"):
            values = run.score_row(row, kind)
            assert_both_sides(values, (5, 20, 100, 200))
            assert_both_sides(np.nan_to_num(values.astype(np.float64)), (100,))   # the task view's rows


def test_an_all_nan_row_ranks_by_index():
    """A low-information query's per-nat row is all NaN: ranked by index on both sides (it used to raise)."""
    values = np.full(9_000, np.nan)
    for k in (1, 20, 9_000):
        np.testing.assert_array_equal(ranking.top_columns(values, k), np.arange(k))
