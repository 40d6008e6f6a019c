"""Answers: how often a query's answer and intermediate steps occur in its top documents, per task and per
query, with the documents that contain them."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, query_view, ranking, url_state, widgets
from dashboard.run import current_run, document_texts, require_table
from dashboard.text_match import answer_in_context, contains_value, context_terms

_ALL = "(all tasks)"


def render() -> None:
    run = current_run()
    st.title("Answers")
    rates = require_table(run, "answer_rates")
    widgets.chart(charts.answer_rates(rates, "Share of (query, target) found in the top k documents, per task"),
                  key="answers.rates", name="answer_rates")

    occurrence = require_table(run, "answer_occurrence")
    tasks = [_ALL] + sorted(occurrence["task"].astype(str).unique())
    ks = sorted(int(k) for k in occurrence["k"].unique())
    left, right = st.columns(2)
    task = url_state.bound(left.selectbox, "Task", key="answers.task", param="task", default=_ALL, options=tasks,
                           what="task")
    k = url_state.bound(right.selectbox, "Top k", key="answers.k", param="k", default=ks[0], parse=int, options=ks,
                        what="k")

    st.subheader("Per query")
    shown = occurrence[occurrence["k"] == k]
    if task != _ALL:
        shown = shown[shown["task"] == task]
    widgets.table(query_view.with_correctness(run, shown), key="answers.per_query", name=f"answer_occurrence_k{k}", opens=("queries", "q", "query_id"))

    st.subheader("Documents that contain a target")
    query_ids = sorted(shown["query_id"].astype(str).unique())
    if not query_ids:
        st.info("No query has an answer or steps to look for.")
        return
    query_id = url_state.bound(st.selectbox, "Query", key="answers.q", param="q", default=query_ids[0],
                               options=query_ids, what="query")
    targets = shown[shown["query_id"] == query_id][["target", "value"]].drop_duplicates()
    row = run.query_row(query_id)
    top, values, _, _ = ranking.ranked_documents(run.key, run, row, "raw", k)
    texts = document_texts(run.key)
    context = context_terms(run.queries.iloc[row].dropna().to_dict())
    found = []
    for rank, (column, score) in enumerate(zip(top, values), 1):
        text = str(texts.iloc[int(column)])
        for target, value in targets.itertuples(index=False):
            hit = (answer_in_context(text, str(value), context) if target == "answer_in_context"
                   else contains_value(text, str(value)))
            if hit:
                doc_id = run.doc_ids[int(column)]
                found.append({"rank": rank, "target": target, "value": value, "doc_id": doc_id,
                              "score": float(score), "text": " ".join(text[:200].split())})
    if not found:
        st.info(f"None of {query_id}'s targets occurs in its top {k} documents.")
        return
    widgets.table(pd.DataFrame(found), key="answers.documents", name=f"answer_documents_{query_id}_k{k}",
                  opens=("documents", "doc", "doc_id"))


if __name__ == "__main__":
    render()
