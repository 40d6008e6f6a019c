"""The torch-free side of validation: BM25 against the Lucene formula, per-query comparisons by hand, the crossed
bootstrap against a loop and against scipy.stats.bootstrap."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from precompute.analysis import validation_statistics as vs
from precompute.analysis.bm25_ranking import BM25Ranking, tokenize

DOCS = ["The capital of Veloria is Marn.", "Solve 3 x + 4 = 10, so x = 2.", "Marn is a river town; Marn Marn.",
        "First 7 - 4 = 3, then 3 * 7 = 21.", "A dog and a cat.", "Veloria"]


def lucene_bm25(docs: list[str], query: str, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """score(d) = Σ_t idf(t) · tf / (tf + k1 (1 − b + b |d| / avgdl)), idf = ln(1 + (N − df + 0.5) / (df + 0.5))."""
    tokens = tokenize(docs)
    n, avgdl = len(tokens), np.mean([len(t) for t in tokens])
    out = np.zeros(n)
    for term in dict.fromkeys(tokenize([query])[0]):
        df = sum(term in t for t in tokens)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, t in enumerate(tokens):
            tf = t.count(term)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * len(t) / avgdl)) if tf else 0.0
    return out


@pytest.mark.parametrize("query", ["capital of Veloria? Marn", "3 x = 2, 7", "nothing matches zzz"])
def test_bm25_matches_the_lucene_formula(query):
    ranking = BM25Ranking(DOCS)
    expected = lucene_bm25(DOCS, query)
    np.testing.assert_allclose(ranking.scores(query), expected, rtol=1e-5, atol=1e-6)
    assert ranking.top(query, 3).tolist() == sorted(range(len(DOCS)), key=lambda i: (-expected[i], i))[:3]
    assert "3" in tokenize(["x = 3"])[0]          # single characters are terms (digits matter)


def frame(rows):
    return pd.DataFrame(rows, columns=["query_id", "task", "method", "set", "draw", "delta_logprob", "set_tokens"])


def example():
    rows = []
    for q, draws in (("q1", [0.1, 0.2, 0.3]), ("q2", [0.0, 0.0, 0.4])):
        rows += [(q, "t", "random", "random", d, v, 10) for d, v in enumerate(draws)]
    rows += [("q1", "t", "a", "top", 0, 0.5, 12), ("q1", "t", "a", "bottom", 0, 0.2, 8),
             ("q2", "t", "a", "top", 0, 0.4, 12), ("q2", "t", "a", "bottom", 0, -0.1, 8),
             ("q1", "t", "b", "top", 0, 0.25, 11)]
    return frame(rows)


def test_per_query_by_hand():
    table = vs.per_query(example()).set_index(["method", "query_id"])
    q1, q2 = table.loc[("a", "q1")], table.loc[("a", "q2")]
    assert q1["top_beats_all"] and not q2["top_beats_all"]          # 0.4 ties the largest draw of q2
    assert q1["top_z"] == pytest.approx((0.5 - 0.2) / 0.1)
    assert q2["top_win_rate"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert not q1["bottom_below_all"] and q2["bottom_below_all"]
    assert q1["bottom_win_rate"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert q1["random_sd"] == pytest.approx(0.1) and q1["top_tokens"] == 12 and q1["random_tokens_mean"] == 10
    b = table.loc["b"]
    assert list(b.index) == ["q1"] and math.isnan(b.loc["q1", "bottom_delta"])
    assert pd.isna(b.loc["q1", "bottom_below_all"])               # no bottom set: unknown, not False
    assert b.loc["q1", "top_win_rate"] == pytest.approx(2 / 3)


def test_crossed_bootstrap_matches_a_loop():
    rng = np.random.default_rng(5)
    values, draws = rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, (30, 6))
    low, high = vs.crossed_bootstrap(values, draws, vs._beats_all, n_boot=300, seed=11)
    replay = np.random.default_rng(11)
    queries = replay.integers(0, 30, size=(300, 30))
    columns = replay.integers(0, 6, size=(300, 6))
    estimates = []
    for b in range(300):
        beats = [values[q] > max(draws[q, c] for c in columns[b]) for q in queries[b]]
        estimates.append(np.mean(beats))
    assert (low, high) == tuple(np.percentile(estimates, [2.5, 97.5]))


def test_query_only_statistic_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(3)
    values, draws = rng.normal(0.5, 1.0, 80), rng.normal(0.0, 1.0, (80, 8))
    low, high = vs.crossed_bootstrap(values, draws, vs._mean_values, n_boot=4000, seed=1)
    reference = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile",
                                rng=np.random.default_rng(2)).confidence_interval
    width = reference.high - reference.low
    assert abs(low - reference.low) < 0.1 * width and abs(high - reference.high) < 0.1 * width


def test_method_summary_point_values_and_empty_input():
    summary = vs.method_summary(example(), n_boot=200).set_index("method")
    assert summary.loc["a", "frac_top_beats_all"] == 0.5 and summary.loc["a", "chance_beats_all"] == 0.25
    assert summary.loc["a", "top_delta_mean"] == pytest.approx(0.45)
    assert summary.loc["a", "frac_bottom_below_all"] == 0.5
    assert math.isnan(summary.loc["b", "frac_bottom_below_all"]) and summary.loc["b", "n_queries"] == 1
    empty = vs.summarize(None)
    assert empty["validation_summary"].empty and list(empty["validation_summary"].columns) == vs.SUMMARY_COLUMNS


def test_per_token_win_rates_and_exact_intervals():
    table = vs.per_query(example()).set_index(["method", "query_id"])
    # per set-token: q1 0.5/12 beats 0.01, 0.02, 0.03; q2 0.4/12 beats 0.0 and 0.0 but not 0.04
    assert table.loc[("a", "q1"), "top_win_rate_per_token"] == 1.0
    assert table.loc[("a", "q2"), "top_win_rate_per_token"] == pytest.approx(2 / 3)
    summary = vs.method_summary(example(), n_boot=200).set_index("method")
    assert summary.loc["a", "top_win_rate_per_token"] == pytest.approx(5 / 6)
    # 5 of 6 (query, draw) pairs: Clopper–Pearson from the beta quantiles
    low, high = summary.loc["a", ["top_win_rate_per_token_exact_low", "top_win_rate_per_token_exact_high"]]
    assert low == pytest.approx(stats.beta.ppf(0.025, 5, 2)) and high == pytest.approx(stats.beta.ppf(0.975, 6, 1))
    # the example: 136 of 136 is [97.3%, 100%], not a collapsed [100, 100]
    assert vs.exact_interval(136, 136) == pytest.approx((0.0 + stats.beta.ppf(0.025, 136, 1), 1.0))
    assert round(vs.exact_interval(136, 136)[0], 3) == 0.973
    assert vs.exact_p_value(10, 10, 0.25) == pytest.approx(2 * 0.25 ** 10)
    assert 0 <= summary.loc["a", "frac_top_beats_all_p"] <= 1


def test_share_finding_interval_holds_the_exact_interval():
    from precompute.analysis.tables.validation import build_findings
    summary = vs.method_summary(example(), n_boot=200)
    records = {f.name: f for f in build_findings({"validation_summary": summary,
                                                  "settings": {"k": 3, "steps": 1, "lr": 0.1}})}
    top = records["validation.a.top_beats_random"]
    a = summary.set_index("method").loc["a"]
    assert top.ci_low == pytest.approx(min(a["frac_top_beats_all_low"], a["frac_top_beats_all_exact_low"]) - 0.25)
    assert top.ci_high == pytest.approx(max(a["frac_top_beats_all_high"], a["frac_top_beats_all_exact_high"]) - 0.25)
    assert "exact" in top.text() and top.interval_p >= vs.exact_p_value(1, 2, 0.25)


def simulated(seed: int, shift: float, n_queries: int = 20, n_draws: int = 8) -> pd.DataFrame:
    """Top Δ and random Δ i.i.d. normal (plus `shift` on the top sets); equal token counts."""
    rng = np.random.default_rng(seed)
    rows = [(f"q{q}", "t", "random", "random", d, rng.normal(), 100) for q in range(n_queries) for d in range(n_draws)]
    rows += [(f"q{q}", "t", "m", side, 0, rng.normal() + (shift if side == "top" else -shift), 100)
             for q in range(n_queries) for side in ("top", "bottom")]
    return frame(rows)


def test_validation_findings_calibrated_on_noise_and_hold_when_planted():
    from precompute.analysis.tables.validation import build_findings
    settings = {"k": 3, "steps": 1, "lr": 0.1}
    verdicts = [f.verdict for seed in range(20)
                for f in build_findings({"validation_summary": vs.method_summary(simulated(seed, 0.0), n_boot=100,
                                                                                 seed=seed), "settings": settings})]
    assert len(verdicts) == 60 and verdicts.count("holds") <= 0.05 * len(verdicts), verdicts.count("holds")
    planted = build_findings({"validation_summary": vs.method_summary(simulated(99, 3.0), n_boot=200),
                              "settings": settings})
    assert all(f.verdict == "holds" and f.interval_p < 0.05 for f in planted), [f.text() for f in planted]
