"""What the top documents share, on the Queries page: for the query (or pooled over its task) the distinctive terms
(precompute/analysis/terms.py) as a ranked bar chart — a click on a bar highlights the term in the cards — and
clusters of the top documents (precompute/analysis/clusters.py) — choosing one shows only its cards."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import streamlit as st

from dashboard import highlight, term_charts, url_state, widgets
from dashboard.charts import NEGATIVE, POSITIVE
from dashboard.run import Run, RunKey, analysis_table, document_texts
from precompute.analysis import clusters as doc_clusters
from precompute.analysis import terms
from precompute.analysis.ranking import top_and_bottom

DEPTHS = [20, 50, 100, 200]
COMPARISONS = {"top vs corpus": "top_vs_corpus", "bottom vs corpus": "bottom_vs_corpus",
               "top vs bottom": "top_vs_bottom"}
SHOWN_TERMS = 20
ALL = "all"


@dataclass(frozen=True)
class Themes:
    """What the section chose for the cards: a term to highlight, the documents of a chosen cluster."""
    term: str | None = None
    members: frozenset | None = None     # score columns of the chosen cluster (None: every document)
    cluster_label: str = ""
    depth: int = 100                     # top documents the terms and clusters were computed over

    def marks(self, text: str) -> list[highlight.Mark]:
        if not self.term:
            return []
        return [highlight.Mark(found.start(), found.end(), "term", f"distinctive term “{self.term}”")
                for found in terms.term_pattern(self.term).finditer(text)]


@st.cache_resource(show_spinner="Counting the corpus' terms…", max_entries=4)
def corpus_counts(run_key: RunKey, _run: Run) -> terms.CorpusTerms:
    """The run's corpus_terms table, or (older runs) the same counts computed once here."""
    table = analysis_table(run_key, "corpus_terms")
    if table is None:
        table = terms.corpus_terms(pa.array(document_texts(run_key).astype(str).tolist(), type=pa.large_string()))
    return terms.CorpusTerms(table, _run.n_documents)


def texts_of(run_key: RunKey):
    texts = document_texts(run_key)
    return lambda positions: texts.iloc[np.asarray(positions, dtype=np.int64)].astype(str).tolist()


@st.cache_data(show_spinner=False, max_entries=64)
def chosen_documents(run_key: RunKey, _run: Run, scope: str, key: str, kind: str, depth: int):
    """(top columns, their scores, bottom columns): one query's top / bottom `depth`, or for a task the distinct
    documents of its queries' top / bottom `depth` with their mean score over the task's queries."""
    if scope == "query":
        values = _run.score_row(_run.query_row(key), kind)
        top, bottom = top_and_bottom(values, depth)
        return top, values[top].astype(np.float64), bottom
    rows = np.flatnonzero(_run.queries["task"].astype(str).to_numpy() == key)
    total = np.zeros(_run.n_documents, dtype=np.float64)
    tops, bottoms = [], []
    for row in rows:
        values = np.nan_to_num(_run.score_row(int(row), kind).astype(np.float64))
        total += values
        top, bottom = top_and_bottom(values, depth)
        tops.append(top)
        bottoms.append(bottom)
    top, bottom = np.unique(np.concatenate(tops)), np.unique(np.concatenate(bottoms))
    return top, total[top] / max(len(rows), 1), bottom


@st.cache_data(show_spinner="Finding distinctive terms…", max_entries=64)
def distinctive(run_key: RunKey, _run: Run, scope: str, key: str, kind: str, depth: int) -> dict:
    top, _, bottom = chosen_documents(run_key, _run, scope, key, kind, depth)
    return terms.distinctive(texts_of(run_key), corpus_counts(run_key, _run), top, bottom)


@st.cache_data(show_spinner="Clustering the top documents…", max_entries=64)
def clustering(run_key: RunKey, _run: Run, scope: str, key: str, kind: str, depth: int, n_clusters: int):
    top, scores, _ = chosen_documents(run_key, _run, scope, key, kind, depth)
    return doc_clusters.cluster_documents(texts_of(run_key), top, scores, _run.doc_sources[top],
                                          corpus_counts(run_key, _run), n_clusters=n_clusters, seed=0)


def _chosen_term(event, shown: list[str]) -> None:
    """A clicked bar (new since the last run) chooses the highlighted term."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    clicked = str((points[0].get("customdata") or [""])[0]) if points else ""
    if clicked and clicked != st.session_state.get("queries.term_clicked"):
        st.session_state["queries.term_clicked"] = clicked
        st.session_state["queries.term"] = clicked if clicked in shown else None


def _controls(query: dict):
    left, middle, right = st.columns([1, 1, 1])
    scopes = ["query", "task"]
    scope = url_state.bound(left.radio, "Over", key="queries.scope", param="scope", default="query",
                            options=scopes, horizontal=True, what="scope",
                            format_func=lambda s: "this query" if s == "query" else f"task {query['task']}",
                            help="task: the distinct documents of every query of the task's top (bottom) k")
    comparison = url_state.bound(middle.selectbox, "Compare", key="queries.compare", param="compare",
                                 default="top vs corpus", options=list(COMPARISONS), what="comparison")
    depth = url_state.bound(right.selectbox, "Top documents (k)", key="queries.depth", param="depth", default=100,
                            parse=int, options=DEPTHS, what="k")
    return scope, comparison, depth


def _terms_chart(run: Run, scope: str, key: str, kind: str, comparison: str, depth: int) -> list[str]:
    found = distinctive(run.key, run, scope, key, kind, depth)[COMPARISONS[comparison]]
    shown = found.head(SHOWN_TERMS)
    if comparison == "top vs bottom":  # both ends: the top's terms (red) and the bottom's (teal)
        shown = pd.concat([shown.head(SHOWN_TERMS // 2), found.tail(SHOWN_TERMS // 2)]).drop_duplicates("term")
    terms_shown = shown["term"].astype(str).tolist()
    colour = NEGATIVE if comparison == "bottom vs corpus" else POSITIVE
    title = f"Terms of the {comparison} ({'query ' + key if scope == 'query' else 'task ' + key}, k = {depth})"
    event = widgets.chart(term_charts.term_bars(shown, title, colour, st.session_state.get("queries.term")),
                          key="queries.terms", name=f"terms_{scope}_{key}_{COMPARISONS[comparison]}_{depth}",
                          selectable=True)
    _chosen_term(event, terms_shown)
    with st.expander("Terms as a table"):
        first, second = comparison.split(" vs ")
        counts = {"count_a": f"count in the {first} k", "count_b": "count in the rest of the corpus"
                  if second == "corpus" else f"count in the {second} k"}
        widgets.table(found.head(200), key="queries.terms_table",
                      name=f"terms_{scope}_{key}_{COMPARISONS[comparison]}_{depth}",
                      column_config={**{c: st.column_config.NumberColumn(format="%.3f") for c in ("log_odds", "z")},
                                     **counts})
    return terms_shown


def _clusters(run: Run, scope: str, key: str, kind: str, depth: int) -> Themes:
    n_clusters = url_state.bound(st.select_slider, "Clusters", key="queries.clusters", param="clusters", default=4,
                                 parse=int, options=list(range(2, 9)), what="number of clusters")
    found = clustering(run.key, run, scope, key, kind, depth, n_clusters)
    summary = found.summary.drop(columns="terms").assign(cluster=lambda f: f["cluster"] + 1)
    widgets.table(summary, key="queries.cluster_table", name=f"clusters_{scope}_{key}_{depth}",
                  column_config={"positive_share": st.column_config.NumberColumn("share of + influence",
                                                                                 format="percent"),
                                 "label": st.column_config.TextColumn(width="large")})
    options = [ALL] + [str(n + 1) for n in range(len(found.summary))]
    labels = dict(zip(options[1:], found.summary["label"]))
    chosen = url_state.bound(st.selectbox, "Show the cards of", key="queries.cluster", param="cluster",
                             default=ALL, options=options, what="cluster",
                             format_func=lambda c: "every cluster" if c == ALL else f"cluster {c}: {labels[c]}")
    if chosen == ALL:
        return Themes(depth=depth)
    members = frozenset(int(p) for p in found.positions[found.cluster == int(chosen) - 1])
    return Themes(members=members, cluster_label=f"cluster {chosen}: {labels[chosen]}", depth=depth)


def section(run: Run, query: dict, kind: str) -> Themes:
    """The section (terms chart, clusters); returns the term to highlight and the cluster to show."""
    st.subheader("What the top documents share")
    st.caption("Distinctive terms: 1–3-word phrases by the log-odds ratio with an informative Dirichlet prior "
               "(Monroe, Colaresi & Quinn 2008), z-scores; digits, punctuation and stop words at a phrase's ends "
               "are left out. Click a bar to highlight the term in the cards. Clusters: k-means over the top "
               "documents' TF-IDF, named by their distinctive terms against the other top documents.")
    scope, comparison, depth = _controls(query)
    key = str(query["id"]) if scope == "query" else str(query["task"])
    left, right = st.columns([1, 1])
    with left:
        shown = _terms_chart(run, scope, key, kind, comparison, depth)
    with right:
        themes = _clusters(run, scope, key, kind, depth)
    term = st.session_state.get("queries.term")
    if term not in shown:
        term = None
    if term:
        left.caption(f"Highlighted in the cards: “{term}”")
        if left.button("Clear the highlight", key="queries.term_clear"):
            st.session_state["queries.term"] = None
            term = None
    return replace(themes, term=term)


def cluster_ranked(run: Run, row: int, kind: str, themes: Themes, k: int):
    """(columns, scores, 1-based ranks) of the query's first k documents, within its top `depth`, that belong to
    the chosen cluster."""
    from dashboard.ranking import ranked_documents
    columns, values, _, _ = ranked_documents(run.key, run, row, kind, themes.depth)
    keep = np.array([i for i, column in enumerate(columns) if int(column) in themes.members][:k], dtype=np.int64)
    return columns[keep], values[keep], keep + 1
