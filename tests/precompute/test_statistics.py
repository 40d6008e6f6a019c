"""precompute.analysis.statistics against independent computations: slow explicit loops, scipy, simulation."""
import math

import numpy as np
import pytest
from scipy import stats

from precompute.analysis import statistics
from precompute.analysis.tables.correlations import PairSums


def explicit_pair_mean(r, drawn_a, drawn_b=None):
    """Mean r over pairs re-formed from drawn queries (positions), never a query with itself."""
    values = []
    if drawn_b is None:
        for i, qa in enumerate(drawn_a):
            for j, qb in enumerate(drawn_a):
                if i != j and qa != qb and np.isfinite(r[qa, qb]):
                    values.append(r[qa, qb])
    else:
        values = [r[qa, qb] for qa in drawn_a for qb in drawn_b if qa != qb and np.isfinite(r[qa, qb])]
    return np.mean(values) if values else np.nan


def test_pair_means_from_weights_equal_explicit_pairs():
    rng = np.random.default_rng(1)
    r = np.corrcoef(rng.standard_normal((9, 40)))
    r[2, 5] = r[5, 2] = np.nan
    pairs = PairSums(r)
    for _ in range(20):
        a = rng.integers(0, 5, size=5)              # a resample of group {0..4}, duplicates included
        b = rng.integers(5, 9, size=4)
        wa, wb = statistics.query_weights([a, b], 9)
        assert pairs.within([wa]) == pytest.approx(explicit_pair_mean(r, a))
        assert pairs.mean(wa, wb) == pytest.approx(explicit_pair_mean(r, a, b))
        pooled = [r[x, y] for g in (a, b) for i, x in enumerate(g) for j, y in enumerate(g)
                  if i != j and x != y and np.isfinite(r[x, y])]
        assert pairs.within([wa, wb]) == pytest.approx(np.mean(pooled))
        assert pairs.across_all([wa, wb]) == pytest.approx(explicit_pair_mean(r, a, b))


def test_bootstrap_interval_matches_a_slow_reference_loop():
    """Stratified percentile bootstrap of a same-task-minus-other-task pair contrast: the fast weighted version
    (scipy.stats.bootstrap) against a plain loop that re-forms pairs from resampled queries (another generator)."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 300))
    scores = np.vstack([base[0] + rng.standard_normal((7, 300)), base[1] * 0.3 + rng.standard_normal((6, 300))])
    r = np.corrcoef(scores)
    groups = [np.arange(7), np.arange(7, 13)]
    pairs = PairSums(r)

    def contrast(w0, w1):
        return pairs.within([w0]) - pairs.within([w1])
    low, high = statistics.bootstrap_interval(groups, contrast, 13, np.random.default_rng(3), n_resamples=2500)

    reference_rng = np.random.default_rng(99)
    values = []
    for _ in range(2500):
        drawn = [reference_rng.choice(g, size=len(g), replace=True) for g in groups]
        values.append(explicit_pair_mean(r, drawn[0]) - explicit_pair_mean(r, drawn[1]))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    tail = statistics.expanded_alpha(0.05, 6) / 2     # expanded percentile interval, smallest group: 6 queries
    ref_low, ref_high = np.percentile(values, [100 * tail, 100 * (1 - tail)])
    width = ref_high - ref_low
    assert low == pytest.approx(ref_low, abs=0.1 * width) and high == pytest.approx(ref_high, abs=0.1 * width)


def test_bootstrap_of_a_mean_agrees_with_scipy_on_values():
    """A weighted mean of per-query values resampled through weights equals scipy's bootstrap of the values
    (at the expanded percentile interval's level)."""
    rng = np.random.default_rng(4)
    values = rng.lognormal(size=30)

    def mean(w):
        return (w @ values) / w.sum(axis=-1)
    low, high = statistics.bootstrap_interval([np.arange(30)], mean, 30, np.random.default_rng(5), n_resamples=3000)
    level = 1 - statistics.expanded_alpha(0.05, 30)
    direct = stats.bootstrap((values,), np.mean, n_resamples=3000, method="percentile", confidence_level=level,
                             rng=np.random.default_rng(5)).confidence_interval
    assert low == pytest.approx(direct.low, rel=1e-9) and high == pytest.approx(direct.high, rel=1e-9)


def test_permutation_p_value_equals_scipy_on_per_query_values():
    rng = np.random.default_rng(6)
    values = np.concatenate([rng.normal(0.6, 1, 12), rng.normal(0, 1, 15)])
    groups = [np.arange(12), np.arange(12, 27)]

    def difference(w0, w1):
        return (w0 @ values) / w0.sum(axis=-1) - (w1 @ values) / w1.sum(axis=-1)
    p_value = statistics.permutation_p_value(groups, difference, 27, np.random.default_rng(7), n_resamples=3000)
    direct = stats.permutation_test((values[:12], values[12:]), lambda a, b, axis: a.mean(axis) - b.mean(axis),
                                    vectorized=True, n_resamples=3000, rng=np.random.default_rng(7)).pvalue
    assert p_value == pytest.approx(direct)
    # and a slow loop of label shuffles agrees within Monte Carlo error
    shuffle = np.random.default_rng(8)
    observed = values[:12].mean() - values[12:].mean()
    null = []
    for _ in range(3000):
        permuted = shuffle.permutation(values)
        null.append(permuted[:12].mean() - permuted[12:].mean())
    null = np.asarray(null)
    slow = 2 * min((np.sum(null >= observed) + 1) / 3001, (np.sum(null <= observed) + 1) / 3001)
    assert p_value == pytest.approx(slow, abs=0.02)


def test_hypergeometric_expectation_and_tail_against_simulation():
    population, draws = 400, 30
    successes = [7, 60, 0, 150]
    rng = np.random.default_rng(9)
    simulated = np.zeros(10000)
    for m in successes:
        matching = np.zeros(population, dtype=bool)
        matching[:m] = True
        picks = np.argsort(rng.random((10000, population)), axis=1)[:, :draws]
        hits = matching[picks].sum(axis=1)
        assert statistics.expected_hits(draws, m, population) == pytest.approx(hits.mean(), abs=0.05 + 0.02 * m)
        simulated += hits
    observed = float(np.quantile(simulated, 0.9))
    sf = statistics.hypergeometric_sum_sf(observed, [draws] * 4, successes, population)
    assert sf == pytest.approx(np.mean(simulated >= observed), abs=0.015)
    low, high = statistics.hypergeometric_sum_interval([draws] * 4, successes, population)
    assert np.mean((simulated >= low) & (simulated <= high)) >= 0.95
    assert np.mean(simulated < low) <= 0.025 and np.mean(simulated > high) <= 0.025


def test_hypergeometric_pmf_equals_scipy_and_sums_by_convolution():
    for population, successes, draws in [(9000, 1300, 500), (100, 30, 100), (50, 50, 20), (60, 0, 10)]:
        pmf = statistics.hypergeometric_pmf(population, successes, draws)
        expected = stats.hypergeom.pmf(np.arange(len(pmf)), population, successes, draws)
        np.testing.assert_allclose(pmf, expected, atol=1e-10)
    total = statistics.hypergeometric_sum_pmf([5, 5, 8], [3, 10, 4], 30)
    direct = np.convolve(np.convolve(stats.hypergeom.pmf(np.arange(4), 30, 3, 5),
                                     stats.hypergeom.pmf(np.arange(6), 30, 10, 5)),
                         stats.hypergeom.pmf(np.arange(5), 30, 4, 8))
    np.testing.assert_allclose(total, direct, atol=1e-12)


def test_normal_approximation_for_long_supports(monkeypatch):
    exact = statistics.hypergeometric_sum_sf(40.0, [200] * 10, [50] * 10, 5000)
    monkeypatch.setattr(statistics, "MAX_EXACT_SUPPORT", 10)
    assert statistics.hypergeometric_sum_pmf([200] * 10, [50] * 10, 5000) is None
    assert statistics.hypergeometric_sum_sf(40.0, [200] * 10, [50] * 10, 5000) == pytest.approx(exact, abs=0.02)


def test_expanded_percentile_interval_covers_a_small_sample_mean():
    """Means of 6 normal queries: the expanded percentile interval covers the true mean about 95% of the time
    (a plain percentile interval covers ~88%); checked by simulation over 300 samples."""
    rng = np.random.default_rng(10)
    covered = 0
    for trial in range(300):
        values = rng.standard_normal(6)

        def mean(w, values=values):
            return (w @ values) / w.sum(axis=-1)
        low, high = statistics.bootstrap_interval([np.arange(6)], mean, 6, np.random.default_rng(trial), 1000)
        covered += low <= 0.0 <= high
    assert 0.91 <= covered / 300 <= 0.99


@pytest.mark.parametrize("low,high,direction,expected", [
    (0.1, 0.3, "greater", "holds"), (-0.3, -0.1, "greater", "reversed"), (-0.1, 0.3, "greater", "not supported"),
    (0.1, 0.3, "less", "reversed"), (-0.3, -0.1, "less", "holds"), (math.nan, 0.3, "greater", "not supported"),
])
def test_verdict_against_a_difference(low, high, direction, expected):
    assert statistics.verdict(low, high, 0.0, direction) == expected


def test_finding_record_is_json_ready_and_readable():
    finding = statistics.Finding(name="x", claim="A claim.", effect_label="ratio of things", paper_direction="less",
                                 measure="ratio", effect=0.5, ci_low=0.3, ci_high=0.8, p_value=math.nan,
                                 p_value_method="none", n=12, parts={"a": 1.0, "b": math.inf})
    record = finding.record()
    assert record["verdict"] == "holds" and record["null_value"] == 1.0 and record["p_value"] is None
    assert record["parts"] == {"a": 1.0, "b": None}
    assert record["text"] == "A claim. Measured: ratio of things = 0.5× (95% CI 0.3 to 0.8; 12 queries). Verdict: holds."
    permuted = statistics.Finding(name="x", claim="A claim.", effect_label="d", paper_direction="greater",
                                  measure="difference", effect=0.2, ci_low=-0.1, ci_high=0.4, p_value=0.01,
                                  p_value_method=statistics.PERMUTATION, n=8, interval_p=0.2).record()
    assert permuted["text"] == ("A claim. Measured: d = 0.2 (95% CI -0.1 to 0.4; 8 queries). Verdict: not supported "
                                "(p = 0.2 for no effect, from the bootstrap). Label-permutation p = 0.01: it tests "
                                "whether the compared groups' queries are exchangeable at all, not this contrast's "
                                "size.")
    degenerate = statistics.Finding(name="x", claim="A claim.", effect_label="share − chance",
                                    paper_direction="greater", measure="difference", effect=8 / 9, ci_low=8 / 9,
                                    ci_high=8 / 9, p_value=math.nan, p_value_method="none", n=136).record()
    assert "(95% CI 0.889 to 0.889 (width 0: every resample gave this value); 136 queries)" in degenerate["text"]


def test_interval_p_is_where_the_interval_starts_to_exclude_the_null():
    """Brute force: for each alpha on a grid, does the (plain or expanded) percentile interval exclude the null?
    That must agree with interval_p < alpha away from the boundary."""
    rng = np.random.default_rng(4)
    for n, shift in ((None, 0.3), (6, 0.25), (20, 0.4), (8, -0.2)):
        distribution = rng.normal(shift, 0.15, size=4000)
        p = statistics.interval_p_value(distribution, 0.0, n)
        for alpha in np.linspace(0.0005, 0.3, 300):
            if abs(alpha - p) < 2e-3:
                continue
            read_at = alpha if n is None else statistics.expanded_alpha(alpha, n)
            low, high = statistics.percentile_interval(distribution, read_at)
            assert (low > 0 or high < 0) == (p < alpha), (n, alpha, p)
