"""The second-look measures against brute force on small inputs: range-scaled enrichment and AUC of answer
occurrence, the ceiling effect of the raw ratio, the information-adjusted magnitude fit, and ground-truth
specificity."""
import numpy as np
import pandas as pd
import pytest

from precompute.analysis import statistics
from precompute.analysis.context import AnalysisContext
from precompute.analysis.tables.answers import ranking_auc, scaled_enrichment
from precompute.analysis.tables.magnitude import information_regression
from tests.precompute.test_analysis import analyze, make_inputs
from tests.precompute.test_findings import findings_of


def brute_force_auc(scores: np.ndarray, matching: np.ndarray) -> float:
    """Share of (matching, other) pairs where the matching document ranks first (ties by index, as the ranking)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    position = np.empty(len(scores), dtype=np.int64)
    position[order] = np.arange(len(scores))
    pairs = [position[a] < position[b] for a in np.flatnonzero(matching) for b in np.flatnonzero(~matching)]
    return float(np.mean(pairs))


def test_auc_and_scaled_enrichment_against_brute_force():
    rng = np.random.default_rng(2)
    n_docs = 60
    texts = [("total 7 here" if rng.random() < 0.3 else "no match") for _ in range(n_docs)]
    scores = rng.standard_normal((3, n_docs)).astype(np.float32)
    scores[:, :5] = 0.5                                      # ties, broken by index
    inputs = make_inputs(scores, ["arithmetic"] * 3, ["web"] * n_docs, texts, answers=["7"] * 3)
    tables = analyze(inputs)
    occurrence = tables["answer_occurrence"]
    matching = np.asarray(["7" in text for text in texts])
    m = int(matching.sum())
    for row in range(3):
        mine = occurrence[(occurrence.query_id == f"q{row}") & (occurrence.basis == "reference")
                          & (occurrence.target == "answer")]
        assert mine.auc.iloc[0] == pytest.approx(brute_force_auc(scores[row], matching))
        for _, entry in mine.iterrows():
            top = np.lexsort((np.arange(n_docs), -scores[row]))[:entry.k]
            hits, expected = matching[top].sum(), entry.k * m / n_docs
            if entry.k == n_docs:                                # the whole corpus: no room above chance
                assert np.isnan(entry.scaled)
            else:
                assert entry.scaled == pytest.approx((hits - expected) / (min(entry.k, m) - expected))
    pooled = tables["answer_enrichment"]
    row = pooled[(pooled.basis == "reference") & (pooled.target_kind == "answer") & (pooled.k == 50)].iloc[0]
    per_query = occurrence[(occurrence.basis == "reference") & (occurrence.target == "answer") & (occurrence.k == 50)]
    assert row.scaled == pytest.approx((per_query.n_docs - per_query.expected).sum()
                                       / (per_query.max_hits - per_query.expected).sum())
    assert row.auc == pytest.approx(per_query.auc.mean()) and row.scaled_ci_low <= row.scaled <= row.scaled_ci_high
    assert np.isnan(ranking_auc(np.zeros(0, np.int64), 10)) and np.isnan(scaled_enrichment(0, 0.0, 0))
    assert ranking_auc(np.arange(4), 10) == 1.0 and ranking_auc(np.arange(6, 10), 10) == 0.0


def ceiling_inputs(n_docs=400, per_task=6):
    """Perfect retrieval for every query: the answer-containing documents rank first. Reasoning answers ("5") are
    in 200 of 400 documents (enrichment ceiling 2×), factual answers in 10 (ceiling 40×)."""
    texts = [("it is 5" if j < 200 else "plain") + (" Town1 is here" if 200 <= j < 210 else "") for j in range(n_docs)]
    tasks = ["arithmetic"] * per_task + ["slope"] * per_task + ["factual"] * per_task
    answers = ["5"] * (2 * per_task) + ["Town1"] * per_task
    rng = np.random.default_rng(0)
    scores = rng.random((len(tasks), n_docs)).astype(np.float32)
    scores[: 2 * per_task, :200] += 10.0
    scores[2 * per_task:, 200:210] += 10.0
    inputs = make_inputs(scores, tasks, ["web"] * n_docs, texts, answers=answers)
    for query in inputs.queries:
        query["context"] = []
    return inputs


def test_perfect_retrieval_in_both_groups_is_no_effect_though_the_raw_ratio_would_hold():
    records = {r["name"]: r for r in findings_of(ceiling_inputs())}
    answer = records["occurrence.answer"]
    assert answer["effect"] == pytest.approx(0.0, abs=1e-12) and answer["verdict"] == "not supported"
    assert answer["parts"]["reasoning_scaled"] == pytest.approx(1.0)
    assert answer["parts"]["factual_scaled"] == pytest.approx(1.0)
    # the raw ratio: ceilings 400/200 = 2 and 400/10 = 40 over a top 40 -> 2 / 10 (top 40 holds only 10 of 10)
    assert answer["parts"]["enrichment_ratio"] == pytest.approx(2.0 / 10.0)
    assert answer["parts"]["enrichment_ratio_ci_high"] < 1.0          # it would have said "holds"
    assert answer["parts"]["auc_difference"] == pytest.approx(0.0, abs=1e-12)


def test_information_regression_matches_least_squares():
    rng = np.random.default_rng(5)
    log_nats, log_influence = rng.normal(size=12), rng.normal(size=12)
    reasoning = np.arange(12) < 7
    weights = rng.integers(0, 3, size=12).astype(float)
    fit = information_regression(log_influence, log_nats)(weights * reasoning, weights * ~reasoning)
    design = np.stack([np.ones(12), log_nats, reasoning.astype(float)], axis=1)
    root = np.sqrt(weights)
    expected = np.linalg.lstsq(design * root[:, None], log_influence * root, rcond=None)[0]
    assert fit == pytest.approx(expected)


def magnitude_inputs(seed: int, planted: float):
    """Top influence grows as nats^1.3 in every task; reasoning completions carry 10x the nats of factual ones;
    `planted` multiplies reasoning influence at equal nats."""
    rng = np.random.default_rng(seed)
    tasks = ["arithmetic"] * 8 + ["slope"] * 8 + ["factual"] * 8
    nats = np.where(np.asarray(tasks) == "factual", 0.05, 0.5) * rng.lognormal(0, 0.8, len(tasks))
    level = nats ** 1.3 * rng.lognormal(0, 0.3, len(tasks)) * np.where(np.asarray(tasks) == "factual", 1.0, planted)
    scores = (rng.random((len(tasks), 300)) * level[:, None]).astype(np.float32)
    inputs = make_inputs(scores, tasks, ["web"] * 300, ["text"] * 300)
    for query, value in zip(inputs.queries, nats):
        query["nats"] = float(value)
    return inputs


def test_information_adjustment_removes_a_nats_confound_and_keeps_a_planted_effect():
    confounded = {r["name"]: r for r in findings_of(magnitude_inputs(1, planted=1.0))}
    adjusted = confounded["magnitude.information_adjusted"]
    assert adjusted["verdict"] == "not supported" and 0.6 < adjusted["effect"] < 1.6
    assert confounded["magnitude.per_nat_top1"]["effect"] > 1.5       # per nat: still grows with nats (0.3 power)
    assert 1.0 < adjusted["parts"]["slope_log_nats"] < 1.6
    planted = {r["name"]: r for r in findings_of(magnitude_inputs(2, planted=0.25))}["magnitude.information_adjusted"]
    assert planted["verdict"] == "holds" and 0.15 < planted["effect"] < 0.4


def test_specificity_against_direct_counts():
    rng = np.random.default_rng(7)
    n_docs = 200
    kinds = rng.choice(["procedure:arithmetic", "procedure:slope", "procedure:linear_equation", "other"], n_docs)
    names = ["arithmetic", "slope", "linear_equation", "other"]
    texts = [f"{kind.split(':')[-1] if rng.random() < 0.5 else rng.choice(names)} worked example" for kind in kinds]
    tasks = ["arithmetic"] * 4 + ["slope"] * 4
    scores = rng.standard_normal((8, n_docs)).astype(np.float32)
    scores[:4] += 1.5 * (kinds == "procedure:arithmetic")
    inputs = make_inputs(scores, tasks, ["web"] * n_docs, texts, kinds=list(kinds))
    for query in inputs.queries:
        query["prompt"] = f"Q: a {query['task']} question"
    ctx = AnalysisContext(inputs, n_resamples=300, progress=False, findings_k=20)
    from precompute.analysis.tables.specificity import ground_truth_specificity
    table = ground_truth_specificity(ctx)
    for ranking in ("influence", "bm25"):
        part = table[(table.task == "arithmetic") & (table.ranking == ranking)].set_index("procedure")
        ratios = {}
        for procedure in ("arithmetic", "slope", "linear_equation"):
            mask = kinds == f"procedure:{procedure}"
            if ranking == "influence":
                tops = [np.lexsort((np.arange(n_docs), -scores[q]))[:20] for q in range(4)]
            else:
                # BM25: the documents naming "arithmetic" (all equally long) tie, broken by index
                tops = [np.flatnonzero([text.startswith("arithmetic") for text in texts])[:20]] * 4
            ratios[procedure] = np.mean([mask[top].mean() for top in tops]) / mask.mean()
            assert part.loc[procedure, "ratio"] == pytest.approx(ratios[procedure])
        expected = ratios["arithmetic"] / np.mean([ratios["slope"], ratios["linear_equation"]])
        assert part["specificity"].iloc[0] == pytest.approx(expected)
        assert part["specificity_ci_low"].iloc[0] <= expected <= part["specificity_ci_high"].iloc[0]
    record = {r["name"]: r for r in findings_of(inputs)}["ground_truth.arithmetic.specificity"]
    assert record["verdict"] == "holds" and record["parts"]["bm25_specificity"] > 1
    parts = record["parts"]
    assert parts["influence_over_bm25"] == pytest.approx(record["effect"] / parts["bm25_specificity"])


def test_interval_p_agrees_with_every_findings_verdict():
    """A finding holds or is reversed exactly when its interval p is below alpha (the adjustment relies on it)."""
    records = findings_of(magnitude_inputs(3, planted=0.3)) + findings_of(ceiling_inputs())
    for record in records:
        if record["interval_p"] is None:
            continue
        decided = record["verdict"] != "not supported"
        if abs(record["interval_p"] - statistics.ALPHA) > 0.005:
            assert decided == (record["interval_p"] < statistics.ALPHA), record["name"]
