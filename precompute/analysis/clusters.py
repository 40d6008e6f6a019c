"""Clusters of a query's (or a task's) top documents: faiss k-means over the documents' TF-IDF vectors of their
1–3-gram terms (precompute/analysis/terms.py), each cluster named by the terms that set it apart from the other
chosen documents, with its size, its share of the positive influence and its source mix.

TF-IDF: tf = 1 + log(count), idf = log((1 + D) / (1 + documents holding the term in the corpus)) + 1, rows
L2-normalised; features are the MAX_FEATURES terms held by the most chosen documents (terms held by one chosen
document only are left out when others exist: they cannot group documents). Spherical k-means (cosine), several
restarts, seeded and single-threaded, so the same input gives the same clusters; clusters are numbered by size
(largest first, ties by their first document)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.analysis import terms

MAX_FEATURES = 2000
N_REDO = 5
N_ITER = 30
LABEL_TERMS = 3


def tfidf(selection: pd.DataFrame, positions: np.ndarray, corpus: terms.CorpusTerms) -> np.ndarray:
    """[len(positions), features] float32 TF-IDF rows (L2-normalised) of the chosen documents' terms."""
    row_of = {int(p): i for i, p in enumerate(positions)}
    held = selection.groupby("term")["text"].nunique()
    shared = held[held >= 2]
    chosen = (shared if len(shared) else held).sort_values(ascending=False, kind="stable").index[:MAX_FEATURES]
    columns = pd.Index(sorted(chosen))
    _, documents = corpus.lookup(columns)
    idf = np.log((1.0 + corpus.n_documents) / (1.0 + documents)) + 1.0
    matrix = np.zeros((len(positions), len(columns)), dtype=np.float64)
    used = selection[selection["term"].isin(columns)]
    rows = np.fromiter((row_of[int(p)] for p in used["text"]), dtype=np.int64, count=len(used))
    matrix[rows, columns.get_indexer(used["term"])] = 1.0 + np.log(used["count"].to_numpy(np.float64))
    matrix *= idf[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def kmeans(vectors: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Cluster number per row (0 = largest cluster), spherical faiss k-means, deterministic for a seed."""
    import faiss
    n = len(vectors)
    n_clusters = max(1, min(int(n_clusters), n))
    if n_clusters == 1 or vectors.shape[1] == 0:
        return np.zeros(n, dtype=np.int64)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)   # summation order fixed: the same seed gives the same centroids
    try:
        model = faiss.Kmeans(vectors.shape[1], n_clusters, niter=N_ITER, nredo=N_REDO, seed=int(seed),
                             spherical=True, verbose=False, min_points_per_centroid=1,
                             max_points_per_centroid=max(256, n))
        model.train(np.ascontiguousarray(vectors))
        _, assigned = model.index.search(np.ascontiguousarray(vectors), 1)
    finally:
        faiss.omp_set_num_threads(threads)
    assigned = assigned[:, 0].astype(np.int64)
    found = np.unique(assigned)
    sizes = np.array([np.sum(assigned == c) for c in found])
    first = np.array([np.flatnonzero(assigned == c)[0] for c in found])
    order = found[np.lexsort((first, -sizes))]
    renumber = {int(old): new for new, old in enumerate(order)}
    return np.array([renumber[int(c)] for c in assigned], dtype=np.int64)


@dataclass(frozen=True)
class Clustering:
    positions: np.ndarray        # document positions (score columns), in the order given
    cluster: np.ndarray          # cluster number per document
    summary: pd.DataFrame        # one row per cluster (SUMMARY_COLUMNS)


SUMMARY_COLUMNS = ["cluster", "label", "size", "positive_share", "sources", "terms"]


def cluster_documents(texts_of, positions: np.ndarray, scores: np.ndarray, sources: np.ndarray,
                      corpus: terms.CorpusTerms, n_clusters: int = 4, seed: int = 0) -> Clustering:
    """Cluster the documents at `positions` (with their `scores` and `sources`) and describe each cluster."""
    positions = np.asarray(positions, dtype=np.int64)
    selection = terms.selected_terms(texts_of, positions)
    cluster = kmeans(tfidf(selection, positions, corpus), n_clusters, seed)
    member = dict(zip(positions.tolist(), cluster.tolist()))
    in_cluster = selection["text"].map(member).to_numpy()
    positive = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    rows = []
    for number in range(int(cluster.max()) + 1 if len(cluster) else 0):
        inside = cluster == number
        rest = selection[in_cluster != number]
        found = terms.compare(selection[in_cluster == number], rest if len(rest) else None, corpus)
        top_terms = found[found["z"] > 0]["term"].head(LABEL_TERMS).tolist()
        mix = pd.Series(np.asarray(sources)[inside]).value_counts()
        rows.append({"cluster": number, "label": " · ".join(top_terms) or "(no distinctive term)",
                     "size": int(inside.sum()),
                     "positive_share": float(positive[inside].sum() / positive.sum()) if positive.sum() > 0
                     else float("nan"),
                     "sources": ", ".join(f"{name} {count}" for name, count in mix.items()),
                     "terms": top_terms})
    return Clustering(positions, cluster, pd.DataFrame(rows, columns=SUMMARY_COLUMNS))


def purity(cluster: np.ndarray, truth: np.ndarray) -> float:
    """Share of documents whose cluster's most common true class is their own (1 = every cluster pure)."""
    frame = pd.DataFrame({"cluster": cluster, "truth": truth})
    return float(frame.groupby("cluster")["truth"].agg(lambda s: s.value_counts().iloc[0]).sum() / max(len(frame), 1))
