"""Analysis tables against direct recomputation on small inputs; matching rules; ranking helper."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from precompute import analysis
from precompute.analysis import correctness, occurrence, ranking
from precompute.analysis.context import pearson_matrix
from precompute.analysis.search import CorpusSearch, texts_containing
from precompute.analysis.tables.breakdowns import multiplier_ks
from precompute.analysis.tables.magnitude import magnitude_curve, power_law_fit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_inputs(scores, tasks, sources, texts, answers=None, steps=None, layer_scores=None, kinds=None):
    n_queries, n_docs = scores.shape
    queries = []
    for i, task in enumerate(tasks):
        query = {"id": f"q{i}", "task": task, "nats": 2.0, "prompt": "", "completion": ""}
        if answers and answers[i] is not None:
            query["answer"] = answers[i]
            query["completion"] = f" The answer is {answers[i]}." if answers[i].isdigit() else f" It is {answers[i]}."
        if steps and steps[i]:
            query["steps"] = steps[i]
        queries.append(query)
    documents = pd.DataFrame({"id": [f"d{j}" for j in range(n_docs)], "source": sources})
    if kinds is not None:
        documents["kind"] = kinds
    return analysis.AnalysisInputs(
        scores=scores, queries=queries, documents=documents, doc_texts=list(texts), layer_scores=layer_scores,
        normalized_scores=scores / 2.0,
        layer_names=[f"layer{i}" for i in range(layer_scores.shape[1])] if layer_scores is not None else [])


def analyze(inputs, **kwargs):
    return analysis.analyze(inputs, progress=False, n_resamples=200, **kwargs)


def test_pearson_matrix_matches_scipy():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 300)).astype(np.float32)
    scores[1] += 0.3 * scores[0]
    r, p = pearson_matrix(scores, chunk=64)
    for a in range(5):
        for b in range(5):
            expected = stats.pearsonr(scores[a].astype(np.float64), scores[b].astype(np.float64))
            assert r[a, b] == pytest.approx(expected.statistic, abs=1e-9)
            assert p[a, b] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_pearson_constant_row_is_nan():
    r, p = pearson_matrix(np.vstack([np.ones(10), np.arange(10.0)]).astype(np.float32))
    assert math.isnan(r[0, 1]) and math.isnan(p[0, 0]) and r[1, 1] == pytest.approx(1.0)


CASES = [("5", "the answer is 5.", True), ("5", "it is 5.3 now", False), ("5", "it is 0.5 now", False),
         ("5", "x = 15", False), ("5", "x=-5", True), ("12", "(12)", True), ("Paris", "I love paris, truly", True),
         ("Paris", "Parisian food", False), ("New Delhi", "to new delhi.", True), ("5", "5", True),
         ("5", "5.", True), ("5", "a5", False), ("5", "5é", False), ("é", "café é", True),
         ("3 + 4", "so 3 + 4 = 7", True),
         ("-2", "x = -2.", True), ("Marn", "MARN!", True), ("Marn", "_Marn", False)]


@pytest.mark.parametrize("value,text,expected", CASES)
def test_contains_value(value, text, expected):
    assert occurrence.contains_value(text, value) is expected
    assert bool(texts_containing([text], value)[0]) is expected


def test_corpus_search_equals_the_exact_rule():
    """The RE2 prefilter + exact check finds exactly the documents the Python rule finds."""
    rng = np.random.default_rng(1)
    pieces = ["5", "15", "5.3", "0.5", "-5", "x", "é", "Paris", "paris", "Parisian", "_", ".", " ", "\n", "(", ")",
              "New", "Delhi", "3", "+", "4", "= ", "ß", "İ", "7"]
    texts = ["".join(rng.choice(pieces, size=rng.integers(1, 12))) for _ in range(3000)]
    search = CorpusSearch(texts)
    for value, _, _ in CASES:
        expected = np.flatnonzero([occurrence.contains_value(text, value) for text in texts])
        np.testing.assert_array_equal(search.containing(value), expected)
    expected = np.flatnonzero([occurrence.answer_in_context(text, "5", ["3", "4"]) for text in texts])
    np.testing.assert_array_equal(search.in_context("5", ["3", "4"]), expected)


def test_completion_targets_and_correctness_of_the_demo_queries():
    queries = [json.loads(line) for line in open(os.path.join(ROOT, "data", "queries.jsonl"))]
    assert all(correctness.is_correct({**q, "correct": None}) == q["correct"] for q in queries)
    slope = next(q for q in queries if q["id"] == "slope-03")     # completes "... 3 / 2 = 1. The answer is 1."
    assert occurrence.query_targets(slope, "reference") == [("answer", "3"), ("step_1", "3"), ("step_2", "1")]
    assert occurrence.query_targets(slope, "completion") == [("answer", "1"), ("step_1", "3"), ("step_2", "2")]
    factual = next(q for q in queries if q["id"] == "factual-00")
    assert occurrence.query_targets(factual, "completion") == [("answer", "Marn")]
    assert occurrence.completion_steps(" 6x = 39 - 3 = 36. x = 36 / 6 = 6.") == ["36", "6"]
    assert occurrence.completion_answer(" Paris.", numeric=False) == "Paris"
    assert occurrence.completion_answer(" The capital of Xiyorke Vell Dorn.", numeric=False) == ""


def test_context_terms_of_prompts():
    assert occurrence.context_terms({"prompt": "Q: What is (4 - 3) * 7?\nA:"}) == ["4", "3", "7"]
    assert occurrence.context_terms({"prompt": "Q: What is the capital of Veloria?\nA:"}) == ["Veloria"]
    assert occurrence.context_terms({"prompt": "Q: anything 5", "context": ["Marn"]}) == ["Marn"]


def test_top_columns_is_the_prefix_of_a_stable_sort():
    rng = np.random.default_rng(2)
    values = rng.integers(0, 20, size=500).astype(np.float32)      # many ties
    values[[3, 70]] = np.nan
    full = np.argsort(-values, kind="stable")
    for k in (1, 7, 60, 124, 125, 499, 500, 600):
        np.testing.assert_array_equal(ranking.top_columns(values, k), full[:min(k, 500)])
    top, bottom = ranking.top_and_bottom(values, 30)
    np.testing.assert_array_equal(bottom, np.argsort(values, kind="stable")[:30])
    distinct = rng.standard_normal(1000).astype(np.float32)            # no ties: the fast sort path
    np.testing.assert_array_equal(ranking.top_columns(distinct, 1000), np.argsort(-distinct, kind="stable"))


def test_per_nat_flags_low_information_instead_of_dividing():
    scores = np.array([[2.0, 4.0], [1.0, 1.0], [3.0, 3.0]])
    out = ranking.per_nat(scores, np.array([2.0, ranking.MIN_NATS / 2, np.nan]))
    np.testing.assert_array_equal(out[0], [1.0, 2.0])
    assert np.isnan(out[1:]).all()
    assert ranking.low_information([1.0, 0.0, np.nan]).tolist() == [False, True, True]


def test_magnitude_curve_by_hand():
    cumulative, relative = magnitude_curve(np.array([8.0, 4.0, 2.0, 1.0, 1.0]), np.array([10.0, 20.0, 40.0, 100.0]))
    assert cumulative.tolist() == [8.0, 8.0, 12.0, 16.0]        # ceil(0.1*5)=1, ceil(0.2*5)=1, ceil(0.4*5)=2, 5
    assert relative.tolist() == [0.5, 0.5, 0.75, 1.0]


def test_power_law_on_exact_power_law():
    slope, intercept, r2, n = power_law_fit(3.0 * np.arange(1, 501, dtype=np.float64) ** -1.7)
    assert slope == pytest.approx(-1.7) and intercept == pytest.approx(math.log(3.0))
    assert r2 == pytest.approx(1.0) and n == 500


def test_multiplier_ks():
    assert multiplier_ks(1_000_000) == [50, 500, 5000, 50000, 500000, 1_000_000]
    assert multiplier_ks(30) == [30]


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
    kinds = ["procedure:arithmetic", "procedure:arithmetic+slope", "unrelated", "fact:France", "unrelated",
             "unrelated", "procedure:slope", "unrelated"]
    layer_scores = np.stack([scores * 0.25, scores * 0.75], axis=1)
    inputs = make_inputs(scores, ["arithmetic", "arithmetic", "factual", "factual"], sources, texts,
                         answers=["7", "12", "Paris", None], steps=[["3 + 4", "7"], [], [], []],
                         layer_scores=layer_scores, kinds=kinds)
    inputs.queries[0]["completion"] = " 1 + 2 = 3, 3 + 4 = 7. The answer is 7."    # one step: 3 (7 is the answer)
    return inputs


def test_small_world_tables():
    inputs = small_world()
    tables = analyze(inputs, top_k=3)
    assert set(tables) == set(analysis.TABLE_NAMES) | {"findings"}
    top = tables["top_docs"]
    q0_top = top[(top.query_id == "q0") & (top.side == "top")]
    assert q0_top.doc_index.tolist() == [0, 1, 2] and q0_top["rank"].tolist() == [1, 2, 3]
    assert q0_top.contains_answer.tolist() == [True, False, False]   # "7.5" is not the number 7
    assert q0_top.steps_found.tolist() == [1, 0, 0] and set(q0_top.n_steps) == {1}   # "3"; the answer 7 is no step
    assert q0_top.score_per_nat.tolist() == [4.0, 3.5, 3.0]
    assert top[(top.query_id == "q0") & (top.side == "bottom")].doc_index.tolist() == [7, 6, 5]

    occurrence_table = tables["answer_occurrence"]
    at_8 = occurrence_table[(occurrence_table.k == 8) & (occurrence_table.basis == "completion")]
    q2 = at_8[(at_8.query_id == "q2") & (at_8.target == "answer")].iloc[0]
    assert q2.n_docs == 1 and q2.first_rank == 1 and q2.n_matching == 1 and q2.expected == pytest.approx(1.0)
    q1 = at_8[(at_8.query_id == "q1") & (at_8.target == "answer")].iloc[0]
    assert q1.n_docs == 2 and q1.first_rank == 4       # docs 2 and 6 contain 12; doc 2 ranks fourth for q1
    assert set(occurrence_table.k) == {8}                # every k capped at D = 8
    rates = tables["answer_rates"]
    factual = rates[(rates.task == "factual") & (rates.target_kind == "answer") & (rates.basis == "completion")]
    assert factual.rate.item() == 1.0 and factual.chance_rate.item() == pytest.approx(1.0)

    multipliers = tables["source_multipliers"]
    row = multipliers[(multipliers.task == "arithmetic") & (multipliers.side == "top") & (multipliers.k == 8)
                      & (multipliers.source == "math")].iloc[0]
    assert row.multiplier == pytest.approx(1.0) and row.base_share == pytest.approx(2 / 8)
    categories = tables["category_multipliers"]
    assert set(categories.column) == {"source", "kind", "kind_family"}

    assert tables["layer_share"][tables["layer_share"].layer_index == 1].share.tolist() == pytest.approx([0.75, 0.75])
    correlations = tables["correlations"]
    expected = stats.pearsonr(inputs.scores[0], inputs.scores[1]).statistic
    pair = correlations[(correlations.query_a == "q0") & (correlations.query_b == "q1")]
    assert len(correlations) == 16 and pair.pearson.item() == pytest.approx(expected, abs=1e-6)
    task_corr = tables["task_correlations"]
    same = task_corr[(task_corr.task_a == "arithmetic") & (task_corr.task_b == "arithmetic")].iloc[0]
    assert same.n_pairs == 1 and same.mean_pearson == pytest.approx(expected, abs=1e-6)  # q0-q1, once

    magnitude = tables["magnitude"]
    q0_pos = magnitude[(magnitude.query_id == "q0") & (magnitude.sign == "positive")]
    assert q0_pos.cumulative.iloc[-1] == pytest.approx(33.0) and q0_pos.per_nat.iloc[-1] == pytest.approx(16.5)
    q0_neg = magnitude[(magnitude.query_id == "q0") & (magnitude.sign == "negative")]
    assert q0_neg.cumulative.iloc[0] == pytest.approx(2.0) and q0_neg.cumulative.iloc[-1] == pytest.approx(3.0)
    assert tables["power_law"].n_fit.tolist() == [6, 6, 5, 5]

    truth = tables["ground_truth"]
    row = truth[(truth.task == "arithmetic") & (truth.procedure == "arithmetic") & (truth.k == 8)].iloc[0]
    assert row.share == pytest.approx(2 / 8) and row.ratio == pytest.approx(1.0)
    row = truth[(truth.task == "factual") & (truth.procedure == "slope") & (truth.k == 8)].iloc[0]
    assert row.base_share == pytest.approx(2 / 8)


def test_answer_in_context_needs_the_query_terms():
    """The bare answer '21' is in docs 0 and 1, but only doc 1 also holds the prompt's numbers 4, 3 and 7."""
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    inputs = make_inputs(scores, ["arithmetic", "factual"], ["math", "math", "wiki"],
                         ["it costs 21 dollars", "(7 - 4) * 7 = 3 * 7 = 21", "The capital of Veloria is Marn."],
                         answers=["21", "Marn"])
    inputs.queries[0]["prompt"] = "Q: What is (7 - 4) * 7?\nA:"
    inputs.queries[1]["prompt"] = "Q: What is the capital of Veloria?\nA:"
    table = analyze(inputs, top_k=3)["answer_occurrence"]
    at_3 = table[(table.k == 3) & (table.basis == "reference")].set_index(["query_id", "target"])
    assert at_3.loc[("q0", "answer")].n_docs == 2 and at_3.loc[("q0", "answer")].first_rank == 1
    assert at_3.loc[("q0", "answer_in_context")].n_docs == 1 and at_3.loc[("q0", "answer_in_context")].first_rank == 2
    assert at_3.loc[("q1", "answer_in_context")].first_rank == 1


def test_enrichment_is_observed_over_hypergeometric_expectation():
    """answer_enrichment sums top-k hits and k·M/D over a task's queries; p-value = exact hypergeometric tail."""
    rng = np.random.default_rng(3)
    texts = [("the answer is 5" if j % 4 == 0 else "nothing here") for j in range(200)]
    scores = rng.standard_normal((3, 200)).astype(np.float32)
    scores[:, ::4] += 2.0                                   # documents with "5" rank high
    inputs = make_inputs(scores, ["arithmetic"] * 3, ["web"] * 200, texts, answers=["5", "5", "5"])
    table = analyze(inputs)["answer_enrichment"]
    row = table[(table.k == 50) & (table.basis == "completion") & (table.target_kind == "answer")].iloc[0]
    tops = [np.argsort(-scores[i], kind="stable")[:50] for i in range(3)]
    observed = sum(int(np.sum(top % 4 == 0)) for top in tops)
    assert row.observed == observed and row.expected == pytest.approx(3 * 50 * 50 / 200)
    assert row.enrichment == pytest.approx(observed / 37.5)
    convolved = stats.hypergeom.pmf(np.arange(51), 200, 50, 50)
    total = np.convolve(np.convolve(convolved, convolved), convolved)
    assert row.p_value == pytest.approx(total[observed:].sum(), rel=1e-6)


def test_task_pair_counts_are_distinct_query_pairs():
    """n_pairs, mean and sd of task_correlations against a loop over distinct pairs (i < j within a task, every
    (i, j) across two tasks), a constant row (NaN r) left out."""
    rng = np.random.default_rng(5)
    tasks = ["slope"] * 5 + ["factual"] * 4 + ["arithmetic"] * 3
    scores = rng.standard_normal((len(tasks), 60)).astype(np.float32)
    scores[6] = 1.0                                          # a constant row: its r is NaN with everyone
    table = analyze(make_inputs(scores, tasks, ["web"] * 60, ["x"] * 60), top_k=3)["task_correlations"]
    for row in table.itertuples():
        rows_a = [i for i, task in enumerate(tasks) if task == row.task_a]
        rows_b = [j for j, task in enumerate(tasks) if task == row.task_b]
        pairs = {tuple(sorted((i, j))) for i in rows_a for j in rows_b if i != j}
        values = [stats.pearsonr(scores[i].astype(np.float64), scores[j].astype(np.float64)).statistic
                  for i, j in sorted(pairs) if 6 not in (i, j)]
        assert row.n_pairs == len(values), (row.task_a, row.task_b)
        assert row.mean_pearson == pytest.approx(np.mean(values), abs=1e-6)
        assert row.std_pearson == pytest.approx(np.std(values), abs=1e-6)
    same = table[(table.task_a == "slope") & (table.task_b == "slope")].n_pairs.item()
    assert same == 10                                        # 5 queries: 5·4/2, not 20


def test_the_analysis_layer_imports_without_torch():
    code = ("import sys, precompute.analysis, precompute.analysis.docs; "
            "assert not {'torch', 'engine', 'transformers'} & set(sys.modules), sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
