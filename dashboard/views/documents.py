"""Documents (?doc=): search by text; one document's score for every query (by task); documents with the
most similar influence profile."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, pages, similarity, url_state, widgets
from dashboard.run import Run, RunKey, current_run, document_texts

SEARCH_RESULTS = 50


@st.cache_data(show_spinner="Searching…", max_entries=64)
def search_documents(run_key: RunKey, _run: Run, needle: str) -> np.ndarray:
    """Columns of the first documents whose text contains `needle` (case-insensitive)."""
    texts = document_texts(run_key)
    hits = np.flatnonzero(texts.str.contains(needle, case=False, regex=False).to_numpy(dtype=bool, na_value=False))
    return hits[:SEARCH_RESULTS]


def _search(run: Run) -> None:
    url_state.from_url("documents.search", "search", "")
    needle = st.text_input("Search document text", key="documents.search")
    url_state.to_url("search", needle or None)
    if not needle:
        return
    hits = search_documents(run.key, run, needle)
    if len(hits) == 0:
        st.info("No document contains that text.")
        return
    texts = document_texts(run.key)
    ids = run.doc_ids[hits]
    found = pd.DataFrame({"doc_id": ids, "source": run.doc_sources[hits],
                          "text": [str(texts.iloc[int(c)])[:160] for c in hits],
                          "open": [pages.url("documents", doc=doc) for doc in ids]})
    st.caption(f"First {len(found)} matches")
    widgets.table(found, key="documents.results", name="document_search",
                  column_config={"open": st.column_config.LinkColumn("open", display_text="open")})


def _profile(run: Run, column: int, doc_id: str) -> None:
    scores = np.asarray(run.scores[:, column], dtype=np.float64)
    profile = pd.DataFrame({"query_id": run.queries["id"], "task": run.queries["task"].astype(str), "score": scores})
    widgets.chart(charts.document_profile(profile, f"Score of {doc_id} for every query, by task"),
                  key="documents.profile", name=f"profile_{doc_id}")
    ranked = profile.assign(open=[pages.url("queries", q=q) for q in profile["query_id"]])
    ranked = ranked.sort_values("score", ascending=False)
    widgets.table(ranked, key="documents.queries", name=f"scores_{doc_id}",
                  column_config={"open": st.column_config.LinkColumn("open", display_text="open query"),
                                 "score": st.column_config.NumberColumn(format="%.4g")})


def _similar(run: Run, column: int, doc_id: str) -> None:
    st.subheader("Most similar influence profiles")
    st.caption("Cosine similarity of the documents' score vectors over all queries (faiss inner product).")
    columns, cosine = similarity.most_similar(run, column)
    texts = document_texts(run.key)
    ids = run.doc_ids[columns]
    similar = pd.DataFrame({"doc_id": ids, "cosine": cosine, "source": run.doc_sources[columns],
                            "text": [str(texts.iloc[int(c)])[:160] for c in columns],
                            "open": [pages.url("documents", doc=doc) for doc in ids]})
    widgets.table(similar, key="documents.similar", name=f"similar_to_{doc_id}",
                  column_config={"open": st.column_config.LinkColumn("open", display_text="open"),
                                 "cosine": st.column_config.NumberColumn(format="%.3f")})


def render() -> None:
    run = current_run()
    st.title("Documents")
    _search(run)

    first = str(run.documents["id"].iloc[0])
    url_state.from_url("documents.doc", "doc", first)
    doc_id = st.text_input("Document id", key="documents.doc").strip()
    column = run.doc_column(doc_id)
    if column is None:
        st.warning(f"No document with id {widgets.markdown_text(doc_id)} in this run.")
        return
    url_state.to_url("doc", doc_id)
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
