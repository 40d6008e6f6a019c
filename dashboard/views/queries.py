"""Queries (?q=): pick a query; its prompt and completion, top and bottom documents as cards, per-layer split."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, ranking, url_state, widgets
from dashboard.run import SCORE_KINDS, current_run, document_texts, token_scores
from dashboard.text_match import found_targets, query_targets

_ALL = "(all tasks)"


def filter_queries(queries: pd.DataFrame, task: str, search: str) -> pd.DataFrame:
    chosen = queries if task == _ALL else queries[queries["task"] == task]
    if search:
        text = chosen["id"] + " " + chosen["prompt"].astype(str) + " " + chosen["completion"].astype(str)
        chosen = chosen[text.str.contains(search, case=False, regex=False)]
    return chosen


def _cards(run, row: int, query: dict, side: str, indices, values, kind_label: str, tokens) -> None:
    texts = document_texts(run.key)
    targets = query_targets(query)
    for rank, (column, value) in enumerate(zip(indices, values), 1):
        doc = run.documents.iloc[int(column)]
        text = str(texts.iloc[int(column)])
        doc_tokens = None
        if tokens is not None:
            doc_tokens = tokens[(tokens["doc_id"] == doc["id"]) & (tokens["side"] == side)]
        widgets.document_card(rank=rank, doc_id=doc["id"], score=float(value), score_label=kind_label,
                              source=str(doc["source"]), text=text, badges=found_targets(text, targets),
                              tokens=doc_tokens, key=f"queries.{side}.{rank}")


def render() -> None:
    run = current_run()
    queries = run.queries
    st.title("Queries")
    tasks = [_ALL] + sorted(queries["task"].astype(str).unique())
    url_state.from_url("queries.task", "task", _ALL, options=tasks)
    url_state.from_url("queries.search", "search", "")
    left, right = st.columns([1, 2])
    task = left.selectbox("Task", tasks, key="queries.task")
    search = right.text_input("Search prompts and completions", key="queries.search")
    url_state.to_url("task", None if task == _ALL else task)
    url_state.to_url("search", search or None)

    shown = filter_queries(queries, task, search)
    if shown.empty:
        st.warning("No query matches these filters.")
        st.stop()
    ids = shown["id"].tolist()
    url_state.from_url("queries.q", "q", ids[0], options=ids)
    labels = dict(zip(shown["id"], shown["task"] + " · " + shown["id"] + " · " + shown["prompt"].astype(str).str[:80]))
    query_id = st.selectbox(f"Query ({len(ids):,} shown)", ids, key="queries.q", format_func=labels.get)
    url_state.to_url("q", query_id)

    kinds = list(SCORE_KINDS)
    url_state.from_url("queries.score", "score", kinds[0], options=kinds)
    url_state.from_url("queries.k", "k", 5, parse=int, options=range(1, 51))
    left, right = st.columns([2, 1])
    kind_label = left.radio("Score", kinds, key="queries.score", horizontal=True,
                            help="raw influence; per nat of the completion's loss; divided by the document's "
                                 "gradient norm (ranks documents differently)")
    k = right.slider("Documents per side", 1, 50, key="queries.k")
    url_state.to_url("score", kind_label)
    url_state.to_url("k", k)

    row = run.query_row(query_id)
    query = queries.iloc[row].to_dict()
    with st.container(border=True):
        st.markdown(f"**{widgets.markdown_text(query_id)}** · task {widgets.markdown_text(query['task'])} · "
                    f"completion loss {float(query.get('nats', float('nan'))):.3f} nats")
        prompt_column, completion_column = st.columns(2)
        prompt_column.caption("Prompt")
        prompt_column.markdown(widgets.escaped_text_html(str(query["prompt"])), unsafe_allow_html=True)
        completion_column.caption("Completion")
        completion_column.markdown(widgets.escaped_text_html(str(query["completion"])), unsafe_allow_html=True)
        targets = query_targets(query)
        if targets:
            st.caption("Looked for: " + ", ".join(f"{name} = {widgets.markdown_text(v)}" for name, v in targets))

    top, top_values, bottom, bottom_values = ranking.ranked_documents(run.key, run, row, SCORE_KINDS[kind_label], k)
    tokens = token_scores(run.key, query_id)
    if tokens is None:
        st.caption("This run has no token_scores.parquet: document text is shown without the per-token heatmap.")
    top_column, bottom_column = st.columns(2)
    with top_column:
        st.subheader("Most positive (helps the completion)")
        _cards(run, row, query, "top", top, top_values, kind_label, tokens)
    with bottom_column:
        st.subheader("Most negative")
        _cards(run, row, query, "bottom", bottom, bottom_values, kind_label, tokens)

    positive, negative = ranking.layer_sums(run.key, run, row)
    widgets.chart(charts.layer_split(run.layers, positive, negative, f"Per-layer influence of {query_id}"),
                  key="queries.layers", name=f"layers_{query_id}")


if __name__ == "__main__":
    render()
