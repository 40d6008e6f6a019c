"""Correlations (?a=&b=): query × query Pearson heatmap grouped by task (click a cell: the pair is outlined and its
scatter shown, with the same r); the task × task matrix."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import cell_clicks, charts, pages, query_view, url_state, widgets
from dashboard.run import Run, RunKey, current_run, require_table

SCATTER_DOCS = 10_000  # points drawn in the pair scatter; r is always the one over all documents


@st.cache_data(show_spinner=False, max_entries=8)
def correlation_matrix(run_key: RunKey, _table: pd.DataFrame, _queries: pd.DataFrame):
    """(query ids ordered by task, their tasks, Pearson matrix in that order) from correlations.parquet."""
    ordered = _queries[["id", "task"]].astype(str).sort_values(["task", "id"], kind="stable")
    ids = ordered["id"].tolist()
    position = pd.Index(ids)
    matrix = np.full((len(ids), len(ids)), np.nan)
    rows = position.get_indexer(_table["query_a"].astype(str))
    cols = position.get_indexer(_table["query_b"].astype(str))
    keep = (rows >= 0) & (cols >= 0)
    matrix[rows[keep], cols[keep]] = _table["pearson"].to_numpy(dtype=np.float64)[keep]
    return ids, ordered["task"].tolist(), matrix


@st.cache_data(show_spinner=False, max_entries=8)
def document_sample(run_key: RunKey, n_documents: int, size: int = SCATTER_DOCS) -> np.ndarray:
    """A fixed random sample of document columns (all of them on small runs)."""
    if n_documents <= size:
        return np.arange(n_documents)
    return np.sort(np.random.default_rng(0).choice(n_documents, size, replace=False))


@st.cache_resource(show_spinner=False, max_entries=32)
def heatmap_figure(run_key: RunKey, _ids: list[str], _tasks: list[str], _matrix: np.ndarray, chosen, n_documents: int):
    """The heatmap for one chosen pair (built once: ~0.3 s for 136 queries); shared read-only between sessions."""
    return charts.correlation_heatmap(_matrix, _ids, _tasks, chosen=chosen, n_documents=n_documents)


def unique_task_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per unordered task pair (the table lists (a, b) and (b, a))."""
    key = [tuple(sorted(pair)) for pair in zip(table["task_a"].astype(str), table["task_b"].astype(str))]
    first = ~pd.Series(key, index=table.index).duplicated()
    return table[first.to_numpy()].reset_index(drop=True)


def pair_r(matrix: np.ndarray, ids: list[str], a: str, b: str) -> float:
    """The heatmap's r of a pair (the same number everywhere on the page)."""
    return float(matrix[ids.index(a), ids.index(b)])


def _pair_scatter(run: Run, a: str, b: str, r: float) -> None:
    columns = document_sample(run.key, run.n_documents)
    x = np.asarray(run.scores[run.query_row(a)])[columns]
    y = np.asarray(run.scores[run.query_row(b)])[columns]
    drawn = (f"all {run.n_documents:,} documents" if len(columns) == run.n_documents
             else f"{len(columns):,} of {run.n_documents:,} documents drawn at random")
    correct = query_view.correctness_by_id(run.key, run.queries)
    figure = charts.score_scatter(x, y, f"{a} raw score ({correct[a]})", f"{b} raw score ({correct[b]})",
                                  run.doc_ids[columns],
                                  f"{a} vs {b}: r = {r:.3f} over all {run.n_documents:,} documents "
                                  f"(points: {drawn})")
    widgets.chart(figure, key="correlations.scatter", name=f"scatter_{a}_{b}")
    left, right = st.columns(2)
    with left:
        pages.link("queries", f"Open {a}", q=a)
    with right:
        pages.link("queries", f"Open {b}", q=b)


def render() -> None:
    run = current_run()
    st.title("Correlations")
    table = require_table(run, "correlations")
    ids, tasks, matrix = correlation_matrix(run.key, table, run.queries)
    clicked = cell_clicks.clicked_cell("correlations.clicks")  # a heatmap cell clicked since the last run
    if clicked is not None and set(clicked) <= set(ids):
        st.session_state["correlations.a"], st.session_state["correlations.b"] = clicked
    left, right = st.columns(2)
    a = url_state.bound(left.selectbox, "Query A", key="correlations.a", param="a", default=None, options=ids,
                        what="query", placeholder="click a cell, or choose")
    b = url_state.bound(right.selectbox, "Query B", key="correlations.b", param="b", default=None, options=ids,
                        what="query", placeholder="click a cell, or choose")
    st.caption("Pearson correlation of two queries' raw scores over all documents; queries grouped by task "
               "(outlined blocks). Click a cell to compare the pair; the chosen pair is outlined in black.")
    chosen = (a, b) if a is not None and b is not None else None
    heatmap = heatmap_figure(run.key, ids, tasks, matrix, chosen, run.n_documents)
    widgets.chart(heatmap, key="correlations.heatmap", name="query_correlations")
    if chosen is not None:
        _pair_scatter(run, a, b, pair_r(matrix, ids, a, b))

    st.subheader("Mean correlation per task pair")
    task_table = unique_task_pairs(require_table(run, "task_correlations"))
    widgets.chart(charts.task_matrix(task_table), key="correlations.tasks_matrix", name="task_correlations")
    widgets.table(task_table, key="correlations.tasks", name="task_correlations",
                  column_config={name: st.column_config.NumberColumn(format="%.3f")
                                 for name in task_table.columns if task_table[name].dtype.kind == "f"})


if __name__ == "__main__":
    render()
