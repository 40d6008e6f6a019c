"""Answers: how often a query's answer and intermediate steps occur in its top documents, per task and per
query, with the documents that contain them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, query_view, ranking, url_state, widgets
from dashboard.run import analysis_table, current_run, document_texts, require_table
from dashboard.text_match import answer_in_context, contains_value, context_terms
from precompute.analysis.context import FINDINGS_K

_ALL = "(all tasks)"
DWARF_RATIO = 10.0  # a log y axis by default when the largest enrichment is this many times the smallest


LOG_HELP = (f"On by default when one task's enrichment is more than {DWARF_RATIO:g}× another's (a linear axis would "
            "flatten the small bars).")


def k_help(ks: list[int], n_documents: int) -> str:
    """Which k the page opens with, and why (findings_k)."""
    k = findings_k(ks, n_documents)
    if k == min(FINDINGS_K, n_documents):
        return f"Default: the top {k} the occurrence finding uses (FINDINGS_K = {FINDINGS_K}, at most the corpus size)."
    return (f"Default: the top {k}, the largest k below the corpus of {n_documents:,} documents (the occurrence "
            f"finding's k = min(FINDINGS_K = {FINDINGS_K}, corpus size) would take every document: ×1 by definition).")


def findings_k(ks: list[int], n_documents: int) -> int:
    """The top-k depth the occurrence finding uses (FINDINGS_K, capped at the corpus size as the analysis caps
    it) when the table has it and it is below the corpus size, else the largest k below the corpus size (at k =
    the corpus every enrichment is ×1 by definition), else the largest k offered."""
    below = [k for k in ks if k < n_documents]
    k = min(FINDINGS_K, n_documents)
    return k if k in below else (below[-1] if below else ks[-1])


def values_dwarf_others(values) -> bool:
    """True when the largest positive value is more than DWARF_RATIO times the smallest (a linear axis would
    flatten the small ones)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    return len(values) > 1 and values.max() > DWARF_RATIO * values.min()


def _by_basis(table: pd.DataFrame, basis: str | None) -> pd.DataFrame:
    return table if basis is None or "basis" not in table.columns else table[table["basis"] == basis]


def enrichment_at(enrichment: pd.DataFrame, basis: str | None, k: int) -> pd.DataFrame:
    """The answer_enrichment rows the chart draws: one basis, one k."""
    chosen = _by_basis(enrichment, basis)
    return chosen[chosen["k"] == k]


def enrichment_figure(chosen: pd.DataFrame, k: int, log_y: bool):
    title = f"Matches in the top {k} documents ÷ matches expected in {k} random documents, per task"
    return charts.enrichment_bars(chosen, title, log_y=log_y)


def opening_figure(enrichment: pd.DataFrame, n_documents: int):
    """The enrichment chart as the page opens (first basis, the finding's k, the default axis): the report's."""
    bases = sorted(enrichment["basis"].astype(str).unique()) if "basis" in enrichment.columns else [None]
    k = findings_k(sorted(int(k) for k in enrichment["k"].unique()), n_documents)
    chosen = enrichment_at(enrichment, bases[0], k)
    return enrichment_figure(chosen, k, values_dwarf_others(chosen["enrichment"]))


def _overview(run, basis: str | None, k: int) -> None:
    """Observed hits over hits expected by chance per task (answer_enrichment), else the found rates."""
    enrichment = analysis_table(run.key, "answer_enrichment")
    if enrichment is not None and len(enrichment):
        chosen = enrichment_at(enrichment, basis, k)
        log_y = url_state.bound(st.toggle, "Log y axis", key="answers.log", param="log",
                                default=values_dwarf_others(chosen["enrichment"]), parse=url_state.parse_bool,
                                allowed=[True, False],
                                help=LOG_HELP)
        widgets.chart(enrichment_figure(chosen, k, log_y), key="answers.enrichment",
                      name=f"answer_enrichment_k{k}")
        st.caption("Whiskers: 95% interval (bootstrap over queries); dotted line: ×1, what chance gives. The bare "
                   "answer of a reasoning query is often a small number that most math documents contain; the "
                   "enrichment says how much more often the top documents contain it than random ones.")
    rates = _by_basis(require_table(run, "answer_rates"), basis)
    widgets.table(rates, key="answers.rates_table", name="answer_rates",
                  column_config={"rate": st.column_config.NumberColumn(format="%.3f")})


def render() -> None:
    run = current_run()
    st.title("Answers")
    occurrence = require_table(run, "answer_occurrence")
    tasks = [_ALL] + sorted(occurrence["task"].astype(str).unique())
    ks = sorted(int(k) for k in occurrence["k"].unique())
    bases = sorted(occurrence["basis"].astype(str).unique()) if "basis" in occurrence.columns else []
    left, middle, right = st.columns(3)
    basis = url_state.bound(left.radio, "Match", key="answers.basis", param="basis", default=bases[0],
                            options=bases, horizontal=True, what="basis",
                            help="completion: the answer and steps the model wrote (its own, when wrong); "
                                 "reference: the data's answer and steps") if bases else None
    task = url_state.bound(middle.selectbox, "Task", key="answers.task", param="task", default=_ALL, options=tasks,
                           what="task")
    k = url_state.bound(right.selectbox, "Top k", key="answers.k", param="k", default=findings_k(ks, run.n_documents),
                        parse=int, options=ks, what="k",
                        help=k_help(ks, run.n_documents))
    _overview(run, basis, k)

    st.subheader("Per query")
    shown = _by_basis(occurrence[occurrence["k"] == k], basis)
    if task != _ALL:
        shown = shown[shown["task"] == task]
    widgets.table(query_view.with_correctness(run, shown), key="answers.per_query", name=f"answer_occurrence_k{k}",
                  opens=("queries", "q", "query_id"))

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
