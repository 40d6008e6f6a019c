"""Distinctive terms: tokenising rule, corpus counts and the log-odds statistic against a hand computation."""
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from precompute.analysis import terms
from tests.precompute.test_analysis import analyze, make_inputs


def test_terms_are_word_ngrams_without_stop_word_ends_or_digits():
    found = terms.document_terms(["Subtract 5 from both sides. The slope is rise over run!", "The answer is 3."])
    first = set(found.loc[found["text"] == 0, "term"])
    assert {"subtract", "from both sides", "rise over run", "slope is rise", "slope"} <= first
    assert "subtract from" not in first          # "5" breaks the phrase
    assert "sides slope" not in first            # so does "."
    assert not any(t.split()[0] in terms.STOP_WORDS or t.split()[-1] in terms.STOP_WORDS for t in first)
    assert list(found.loc[found["text"] == 1, "term"]) == ["answer"]


def test_corpus_counts_match_python_counting_over_chunks():
    texts = ["rise over run", "Rise over the hill", "run run", "over"] * 3
    table = terms.corpus_terms(pa.array(texts), min_count=1, chunk=5)
    counts = dict(zip(table["term"], table["count"]))
    documents = dict(zip(table["term"], table["documents"]))
    assert counts["run"] == 9 and documents["run"] == 6
    assert counts["rise over"] == 6 and counts["rise over run"] == 3 and counts["over"] == 9
    assert counts["over the hill"] == 3 and "the hill" not in counts and counts["hill"] == 3
    assert "rise over run" not in set(terms.corpus_terms(pa.array(texts), min_count=4)["term"])


def test_log_odds_against_a_hand_computation():
    # two terms; a: (3, 1), b: (1, 5); prior α = (1, 1): α0 = 2, n_a = 4, n_b = 6
    delta, z = terms.log_odds(np.array([3, 1]), np.array([1, 5]), np.array([1.0, 1.0]))
    expected_0 = math.log(4 / 2) - math.log(2 / 6)        # (3+1)/(4+2-3-1), (1+1)/(6+2-1-1)
    expected_1 = math.log(2 / 4) - math.log(6 / 2)        # (1+1)/(4+2-1-1), (5+1)/(6+2-5-1)
    assert delta == pytest.approx([expected_0, expected_1], abs=1e-12)
    assert z == pytest.approx([expected_0 / math.sqrt(1 / 4 + 1 / 2), expected_1 / math.sqrt(1 / 2 + 1 / 6)])


def test_compare_against_the_rest_of_the_corpus_by_hand():
    texts = ["slope slope rise", "slope cat", "cat dog", "dog dog cat"]
    corpus = terms.CorpusTerms(terms.corpus_terms(pa.array(texts), min_count=1), len(texts))
    chosen = terms.selected_terms(lambda p: [texts[i] for i in p], np.array([0, 1]))
    frame = terms.compare(chosen, None, corpus, prior_strength=10.0).set_index("term")
    # corpus: slope 3, rise 1, cat 3, dog 3, slope slope 1, slope rise 1, slope cat 1, cat dog 1, dog dog 1,
    # dog cat 1, slope slope rise 1, dog dog cat 1 -> 18 occurrences; chosen: slope 3, rise 1, cat 1, slope slope,
    # slope rise, slope cat, slope slope rise -> 9; the rest of the corpus: 18 - 9
    assert corpus.total == 18
    prior = 10.0 * 3 / 18
    n_a, n_b = 9, 9
    expected = (math.log((3 + prior) / (n_a + 10 - 3 - prior))
                - math.log((0 + prior) / (n_b + 10 - 0 - prior)))
    assert frame.loc["slope", "log_odds"] == pytest.approx(expected, abs=1e-12)
    assert frame.loc["slope", "count_b"] == 0 and frame.loc["cat", "count_b"] == 2
    assert frame.index[0] == "slope"       # the most distinctive term of the chosen documents


def test_distinctive_terms_table_names_the_planted_vocabulary():
    rng = np.random.default_rng(1)
    n_docs = 60
    texts = [("subtract from both sides divide" if j < 10 else "the weather was nice today") + f" {j}"
             for j in range(n_docs)]
    scores = rng.standard_normal((3, n_docs)).astype(np.float32)
    scores[:2, :10] += 10.0                       # queries 0, 1: the procedure documents on top
    inputs = make_inputs(scores, ["arithmetic", "arithmetic", "factual"], ["web"] * n_docs, texts)
    table = analyze(inputs, top_k=10)["distinctive_terms"]
    top = table[(table["scope"] == "task") & (table["key"] == "arithmetic") & (table["comparison"] == "top_vs_corpus")
                & (table["end"] == "over")]
    assert set(top["term"].head(3)) <= set(terms.document_terms([texts[0]])["term"])
    assert (top["z"].head(3) > 1.5).all()   # the prior (1,000 pseudo-occurrences) is strong in a 60-text corpus
    corpus = analyze(inputs, top_k=10)["corpus_terms"].set_index("term")
    assert corpus.loc["subtract", "count"] == 10 and corpus.loc["weather", "documents"] == 50
