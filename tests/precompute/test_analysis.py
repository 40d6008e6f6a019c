"""analysis.py numbers against direct recomputation on small inputs."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from precompute import analysis


def make_inputs(scores, tasks, sources, texts, answers=None, steps=None, layer_scores=None):
    n_queries, n_docs = scores.shape
    queries = []
    for i, task in enumerate(tasks):
        query = {"id": f"q{i}", "task": task, "nats": 2.0}
        if answers and answers[i] is not None:
            query["answer"] = answers[i]
        if steps and steps[i]:
            query["steps"] = steps[i]
        queries.append(query)
    return analysis.AnalysisInputs(
        scores=scores, layer_scores=layer_scores, normalized_scores=scores / 2.0, queries=queries,
        doc_ids=np.asarray([f"d{j}" for j in range(n_docs)], dtype=object),
        doc_sources=np.asarray(sources, dtype=object), doc_texts=list(texts),
        layer_names=[f"layer{l}" for l in range(layer_scores.shape[1])] if layer_scores is not None else [])


def test_pearson_matrix_matches_scipy():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 300)).astype(np.float32)
    scores[1] += 0.3 * scores[0]
    r, p = analysis.pearson_matrix(scores, chunk=64)
    for a in range(5):
        for b in range(5):
            expected = stats.pearsonr(scores[a].astype(np.float64), scores[b].astype(np.float64))
            assert r[a, b] == pytest.approx(expected.statistic, abs=1e-9)
            assert p[a, b] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_pearson_constant_row_is_nan():
    scores = np.vstack([np.ones(10), np.arange(10.0)]).astype(np.float32)
    r, p = analysis.pearson_matrix(scores)
    assert math.isnan(r[0, 1]) and math.isnan(p[0, 0]) and r[1, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("value,text,expected", [
    ("5", "the answer is 5.", True),
    ("5", "it is 5.3 now", False),
    ("5", "it is 0.5 now", False),
    ("5", "x = 15", False),
    ("5", "x=-5", True),
    ("12", "(12)", True),
    ("Paris", "I love paris, truly", True),
    ("Paris", "Parisian food", False),
    ("New Delhi", "to new delhi.", True),
])
def test_contains_value(value, text, expected):
    assert bool(analysis.contains_value([text], value)[0]) is expected


def test_magnitude_curve_by_hand():
    magnitudes = np.array([8.0, 4.0, 2.0, 1.0, 1.0])   # total 16
    cumulative, relative = analysis.magnitude_curve(magnitudes, np.array([10.0, 20.0, 40.0, 100.0]))
    # ceil(0.1*5)=1, ceil(0.2*5)=1, ceil(0.4*5)=2, 5 documents
    assert cumulative.tolist() == [8.0, 8.0, 12.0, 16.0]
    assert relative.tolist() == [0.5, 0.5, 0.75, 1.0]


def test_power_law_on_exact_power_law():
    ranks = np.arange(1, 501, dtype=np.float64)
    slope, intercept, r2, n = analysis.power_law_fit(3.0 * ranks ** -1.7)
    assert slope == pytest.approx(-1.7) and intercept == pytest.approx(math.log(3.0))
    assert r2 == pytest.approx(1.0) and n == 500


def test_source_multiplier_ks():
    assert analysis.source_multiplier_ks(1_000_000) == [50, 500, 5000, 50000, 500000, 1_000_000]
    assert analysis.source_multiplier_ks(30) == [30]


def small_world():
    """4 queries (2 arithmetic, 2 factual) over 8 documents with known rankings."""
    scores = np.array([
        [8, 7, 6, 5, 4, 3, -1, -2],
        [7, 8, 5, 6, 3, 4, -2, -1],
        [1, -3, 2, 9, -4, 0.5, 3, -5],
        [-1, 2, 0.5, -3, 6, 1, -2, 4],
    ], dtype=np.float32)
    sources = ["math", "math", "web", "web", "web", "wiki", "wiki", "code"]
    texts = ["so 3 + 4 = 7", "it is 7.5", "answer 12", "Paris is nice", "parisian", "x", "12 and 7", "none"]
    layer_scores = np.stack([scores * 0.25, scores * 0.75], axis=1)
    return make_inputs(scores, ["arithmetic", "arithmetic", "factual", "factual"], sources, texts,
                       answers=["7", "12", "Paris", None], steps=[["3 + 4"], [], [], []], layer_scores=layer_scores)


def test_small_world_tables():
    inputs = small_world()
    tables = analysis.analyze(inputs, top_k=3, progress=False)
    top = tables["top_docs"]
    q0_top = top[(top.query_id == "q0") & (top.side == "top")]
    assert q0_top.doc_index.tolist() == [0, 1, 2] and q0_top["rank"].tolist() == [1, 2, 3]
    assert q0_top.contains_answer.tolist() == [True, False, False]   # "7.5" is not the number 7
    assert q0_top.steps_found.tolist() == [1, 0, 0] and set(q0_top.n_steps) == {1}
    assert q0_top.score_per_nat.tolist() == [4.0, 3.5, 3.0]
    q0_bottom = top[(top.query_id == "q0") & (top.side == "bottom")]
    assert q0_bottom.doc_index.tolist() == [7, 6, 5]

    occurrence = tables["answer_occurrence"]
    q2 = occurrence[(occurrence.query_id == "q2") & (occurrence.k == 50)].iloc[0]
    assert q2.target == "answer" and q2.n_docs == 1 and q2.first_rank == 1   # doc 3 ranks first, "parisian" no
    q1 = occurrence[(occurrence.query_id == "q1") & (occurrence.k == 50)].iloc[0]
    assert q1.n_docs == 2 and q1.first_rank == 4   # docs 2 and 6 contain 12; doc 2 ranks fourth for q1
    rates = tables["answer_rates"]
    assert rates[(rates.task == "factual") & (rates.k == 50) & (rates.target_kind == "answer")].rate.item() == 1.0

    multipliers = tables["source_multipliers"]
    row = multipliers[(multipliers.task == "arithmetic") & (multipliers.side == "top") & (multipliers.k == 8)
                      & (multipliers.source == "math")].iloc[0]
    assert row.multiplier == pytest.approx(1.0) and row.base_share == pytest.approx(2 / 8)

    layer_share = tables["layer_share"]
    assert layer_share[layer_share.layer_index == 1].share.tolist() == pytest.approx([0.75, 0.75])

    correlations = tables["correlations"]
    assert len(correlations) == 16
    expected = stats.pearsonr(inputs.scores[0], inputs.scores[1]).statistic
    pair = correlations[(correlations.query_a == "q0") & (correlations.query_b == "q1")]
    assert pair.pearson.item() == pytest.approx(expected, abs=1e-6)
    task_corr = tables["task_correlations"]
    same = task_corr[(task_corr.task_a == "arithmetic") & (task_corr.task_b == "arithmetic")].iloc[0]
    assert same.n_pairs == 2 and same.mean_pearson == pytest.approx(expected, abs=1e-6)

    magnitude = tables["magnitude"]
    q0_pos = magnitude[(magnitude.query_id == "q0") & (magnitude.sign == "positive")]
    assert q0_pos.cumulative.iloc[-1] == pytest.approx(33.0) and q0_pos.relative.iloc[-1] == pytest.approx(1.0)
    q0_neg = magnitude[(magnitude.query_id == "q0") & (magnitude.sign == "negative")]
    assert q0_neg.cumulative.iloc[0] == pytest.approx(2.0) and q0_neg.cumulative.iloc[-1] == pytest.approx(3.0)

    findings = tables["findings"]
    assert findings["reasoning_correlates_more"] is True
    assert isinstance(findings["notes"], list) and len(findings["notes"]) == 3


def test_magnitude_by_task_and_power_law_columns():
    tables = analysis.analyze(small_world(), top_k=2, progress=False)
    by_task = tables["magnitude_by_task"]
    assert set(by_task.columns) == {"task", "sign", "percentile", "cumulative_mean", "relative_mean", "n_queries"}
    assert set(by_task.n_queries) == {2}
    assert list(tables["power_law"].columns) == ["query_id", "task", "slope", "intercept", "r2", "n_fit"]
    assert tables["power_law"].n_fit.tolist() == [6, 6, 5, 5]
    assert isinstance(tables["top_docs"], pd.DataFrame)


def test_context_terms_of_prompts():
    from precompute.occurrence import context_terms
    assert context_terms({"prompt": "Q: What is (4 - 3) * 7?\nA:"}) == ["4", "3", "7"]
    assert context_terms({"prompt": "Q: What is the capital of Veloria?\nA:"}) == ["Veloria"]
    assert context_terms({"prompt": "Q: anything 5", "context": ["Marn"]}) == ["Marn"]


def test_answer_in_context_needs_the_query_terms():
    """The bare answer '21' is in docs 0 and 1, but only doc 1 also holds the prompt's numbers 4, 3 and 7."""
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    inputs = make_inputs(scores, ["arithmetic", "factual"], ["math", "math", "wiki"],
                         ["it costs 21 dollars", "(7 - 4) * 7 = 3 * 7 = 21", "The capital of Veloria is Marn."],
                         answers=["21", "Marn"])
    inputs.queries[0]["prompt"] = "Q: What is (7 - 4) * 7?\nA:"
    inputs.queries[1]["prompt"] = "Q: What is the capital of Veloria?\nA:"
    table = analysis.analyze(inputs, top_k=3, progress=False)["answer_occurrence"]
    at_50 = table[table.k == 50].set_index(["query_id", "target"])
    assert at_50.loc[("q0", "answer")].n_docs == 2 and at_50.loc[("q0", "answer")].first_rank == 1
    assert at_50.loc[("q0", "answer_in_context")].n_docs == 1
    assert at_50.loc[("q0", "answer_in_context")].first_rank == 2
    assert at_50.loc[("q1", "answer_in_context")].first_rank == 1
    rates = analysis.answer_rates(table)
    assert set(rates.target_kind) == {"answer", "answer_in_context"}
