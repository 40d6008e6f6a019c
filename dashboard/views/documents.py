"""Documents (?doc=): search by text; one document's score for every query by task, on a scale comparable across
queries (z-score within the query, or rank percentile); documents with the most similar influence profile."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, query_view, similarity, url_state, widgets
from dashboard.run import Run, RunKey, current_run, document_texts

SEARCH_RESULTS = 50
SNIPPET = 160
SCALES = {"z-score within the query": "z", "rank percentile within the query": "percentile", "raw score": "raw"}
_CHUNK = 262_144


@st.cache_data(show_spinner="Searching…", max_entries=64)
def search_documents(run_key: RunKey, _run: Run, needle: str) -> np.ndarray:
    """Columns of the first documents whose text contains `needle` (case-insensitive)."""
    texts = document_texts(run_key)
    hits = np.flatnonzero(texts.str.contains(needle, case=False, regex=False).to_numpy(dtype=bool, na_value=False))
    return hits[:SEARCH_RESULTS]


@st.cache_data(show_spinner="Measuring each query's score spread (once per run)…", max_entries=4)
def query_moments(run_key: RunKey, _run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each query's scores over all documents (float64, in column chunks)."""
    total = np.zeros(_run.n_queries)
    squares = np.zeros(_run.n_queries)
    for start in range(0, _run.n_documents, _CHUNK):
        block = np.asarray(_run.scores[:, start:start + _CHUNK], dtype=np.float64)
        total += block.sum(axis=1)
        squares += np.einsum("qd,qd->q", block, block)
    mean = total / max(_run.n_documents, 1)
    return mean, np.sqrt(np.maximum(squares / max(_run.n_documents, 1) - mean ** 2, 0.0))


def rank_percentiles(scores: np.ndarray, column: int) -> np.ndarray:
    """Per query (row of `scores`), the share of documents scoring below document `column`, in percent."""
    own = np.asarray(scores[:, column], dtype=np.float32)[:, None]
    below = np.zeros(scores.shape[0], dtype=np.int64)
    for start in range(0, scores.shape[1], _CHUNK):
        below += (np.asarray(scores[:, start:start + _CHUNK]) < own).sum(axis=1)
    return 100.0 * below / max(scores.shape[1], 1)


def profile_values(run: Run, column: int, scale: str) -> np.ndarray:
    raw = np.asarray(run.scores[:, column], dtype=np.float64)
    if scale == "percentile":
        return rank_percentiles(run.scores, column)
    if scale == "z":
        mean, std = query_moments(run.key, run)
        return np.divide(raw - mean, std, out=np.zeros_like(raw), where=std > 0)
    return raw


def _search(run: Run) -> None:
    needle = url_state.bound(st.text_input, "Search document text", key="documents.search", param="search",
                             default="")
    if not needle:
        return
    hits = search_documents(run.key, run, needle)
    if len(hits) == 0:
        st.info("No document contains that text.")
        return
    texts = document_texts(run.key)
    found = pd.DataFrame({"doc_id": run.doc_ids[hits], "source": run.doc_sources[hits],
                          "text": [" ".join(str(texts.iloc[int(c)])[:SNIPPET].split()) for c in hits]})
    st.caption(f"First {len(found)} matches")
    widgets.table(found, key="documents.results", name="document_search", opens=("documents", "doc", "doc_id"))


def _profile(run: Run, column: int, doc_id: str) -> None:
    labels = list(SCALES)
    label = url_state.bound(st.radio, "Scale", key="documents.scale", param="scale", default=labels[0],
                            options=labels, horizontal=True,
                            help="Raw scores of different queries differ by orders of magnitude; the z-score "
                                 "(score − query mean) ÷ query standard deviation and the rank percentile put "
                                 "every query on one scale.")
    values = profile_values(run, column, SCALES[label])
    profile = pd.DataFrame({"query_id": run.queries["id"], "task": run.queries["task"].astype(str),
                            "score": values, "raw_score": np.asarray(run.scores[:, column], dtype=np.float64)})
    axis = {"z": "z-score within the query", "percentile": "rank percentile within the query (%)",
            "raw": "raw score"}[SCALES[label]]
    widgets.chart(charts.document_profile(profile, f"{doc_id} for every query, by task ({axis})", axis),
                  key="documents.profile", name=f"profile_{doc_id}")
    ranked = query_view.with_correctness(run, profile.rename(columns={"score": axis}).sort_values(axis,
                                                                                               ascending=False))
    widgets.table(ranked, key="documents.queries", name=f"scores_{doc_id}", opens=("queries", "q", "query_id"),
                  column_config={axis: st.column_config.NumberColumn(format="%.3f"),
                                 "raw_score": st.column_config.NumberColumn(format="%.4g")})


def _similar(run: Run, column: int, doc_id: str) -> None:
    st.subheader("Most similar influence profiles")
    st.caption("Cosine similarity of the documents' score vectors over all queries (faiss inner product).")
    columns, cosine = similarity.most_similar(run, column)
    texts = document_texts(run.key)
    similar = pd.DataFrame({"doc_id": run.doc_ids[columns], "cosine": cosine, "source": run.doc_sources[columns],
                            "text": [" ".join(str(texts.iloc[int(c)])[:SNIPPET].split()) for c in columns]})
    widgets.table(similar, key="documents.similar", name=f"similar_to_{doc_id}", opens=("documents", "doc", "doc_id"),
                  column_config={"cosine": st.column_config.NumberColumn(format="%.3f")})


def render() -> None:
    run = current_run()
    st.title("Documents")
    _search(run)
    first = str(run.doc_ids[0])
    doc_id = url_state.bound(st.text_input, "Document id", key="documents.doc", param="doc", default=first).strip()
    column = run.doc_column(doc_id)
    if column is None:
        st.warning(f"No document with id `{widgets.markdown_text(doc_id)}` in this run. Search its text above, or "
                   "open one from a query's cards.", icon=":material/link_off:")
        return
    document = run.documents.iloc[column]
    text = str(document_texts(run.key).iloc[column])
    with st.container(border=True):
        st.markdown(f"**{widgets.markdown_text(doc_id)}** · source {widgets.markdown_text(document['source'])} · "
                    f"{int(document['n_tokens']):,} tokens{' (truncated)' if bool(document['truncated']) else ''} · "
                    f"gradient norm {float(run.grad_norms[column]):.4g}")
        st.markdown(widgets.escaped_text_html(text), unsafe_allow_html=True)
    _profile(run, column, doc_id)
    _similar(run, column, doc_id)


if __name__ == "__main__":
    render()
