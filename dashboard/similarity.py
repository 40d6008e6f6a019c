"""Documents with similar influence profiles: a faiss inner-product index over L2-normalised score columns
(one Q-dimensional vector per document), built once per run."""
from __future__ import annotations

import faiss
import numpy as np
import streamlit as st

from dashboard.run import Run, RunKey

_CHUNK = 100_000


def profile_vectors(scores: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Score columns start..stop as L2-normalised rows (zero columns stay zero)."""
    block = np.ascontiguousarray(np.asarray(scores[:, start:stop], dtype=np.float32).T)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    np.divide(block, norms, out=block, where=norms > 0)
    return np.nan_to_num(block, copy=False)


@st.cache_resource(show_spinner="Building the similarity index (once per run)…", max_entries=2)
def profile_index(run_key: RunKey, _run: Run) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(_run.n_queries)
    for start in range(0, _run.n_documents, _CHUNK):
        index.add(profile_vectors(_run.scores, start, min(start + _CHUNK, _run.n_documents)))
    return index


def most_similar(run: Run, column: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(columns, cosine similarities) of the k documents most similar to `column`, excluding itself."""
    index = profile_index(run.key, run)
    similarity, columns = index.search(profile_vectors(run.scores, column, column + 1), k + 1)
    keep = columns[0] != column
    return columns[0][keep][:k], similarity[0][keep][:k]
