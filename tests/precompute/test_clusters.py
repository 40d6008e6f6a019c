"""Clusters of top documents: planted groups recovered, the same clusters for the same seed, purity by hand."""
import numpy as np
import pyarrow as pa
import pytest

from precompute.analysis import clusters, terms

GROUPS = ["subtract from both sides then divide both sides", "the slope is rise over run of the line",
          "capital city of the country with its river"]


def planted(n_per_group=8):
    rng = np.random.default_rng(3)
    texts, truth = [], []
    for group, text in enumerate(GROUPS):
        for j in range(n_per_group):
            words = text.split()
            rng.shuffle(words)
            texts.append(" ".join(words[: len(words) - j % 3]) + f" filler{j} common words")
            truth.append(group)
    return texts, np.array(truth)


def run(texts, seed, n_clusters=3):
    corpus = terms.CorpusTerms(terms.corpus_terms(pa.array(texts), min_count=1), len(texts))
    positions = np.arange(len(texts))
    scores = np.linspace(1.0, -0.2, len(texts))
    sources = np.array(["web", "code"] * len(texts))[: len(texts)]
    return clusters.cluster_documents(lambda p: [texts[i] for i in p], positions, scores, sources, corpus,
                                      n_clusters=n_clusters, seed=seed)


def test_planted_groups_are_found_and_named_by_their_words():
    texts, truth = planted()
    found = run(texts, seed=0)
    assert clusters.purity(found.cluster, truth) == 1.0
    for row in found.summary.itertuples():
        group = truth[found.cluster == row.cluster][0]
        assert set(row.terms) <= set(terms.document_terms([GROUPS[group]])["term"])
    assert found.summary["size"].tolist() == [8, 8, 8]
    positive = np.clip(np.linspace(1.0, -0.2, len(texts)), 0, None)
    for row in found.summary.itertuples():
        assert row.positive_share == pytest.approx(positive[found.cluster == row.cluster].sum() / positive.sum())


def test_same_seed_same_clusters():
    texts, _ = planted()
    texts = texts + ["mixed slope sides capital words"] * 3
    first, second = run(texts, seed=7, n_clusters=4), run(texts, seed=7, n_clusters=4)
    assert np.array_equal(first.cluster, second.cluster)
    assert first.summary.equals(second.summary)


def test_purity_by_hand():
    assert clusters.purity(np.array([0, 0, 0, 1, 1]), np.array(["a", "a", "b", "b", "b"])) == pytest.approx(4 / 5)
