"""Correlations: query × query Pearson heatmap grouped by task; click a cell for the two queries' scatter."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, pages, url_state, widgets
from dashboard.run import Run, RunKey, current_run, require_table

SCATTER_DOCS = 5_000  # documents drawn in the pair scatter on big runs


@st.cache_data(show_spinner=False, max_entries=8)
def correlation_matrix(run_key: RunKey, _table: pd.DataFrame, _queries: pd.DataFrame):
    """(query ids ordered by task, their tasks, Pearson matrix in that order) from correlations.parquet."""
    ordered = _queries[["id", "task"]].astype(str).sort_values(["task", "id"], kind="stable")
    ids = ordered["id"].tolist()
    matrix = _table.pivot_table(index="query_a", columns="query_b", values="pearson", aggfunc="first")
    matrix = matrix.reindex(index=ids, columns=ids)
    return ids, ordered["task"].tolist(), matrix.to_numpy(dtype=np.float64)


@st.cache_data(show_spinner=False, max_entries=8)
def document_sample(run_key: RunKey, n_documents: int, size: int = SCATTER_DOCS) -> np.ndarray:
    """A fixed random sample of document columns (all of them on small runs)."""
    if n_documents <= size:
        return np.arange(n_documents)
    return np.sort(np.random.default_rng(0).choice(n_documents, size, replace=False))


def _apply_click(event, ids: list[str]) -> None:
    """Take a clicked heatmap cell (new since the last rerun) into the pair selectors."""
    points = event.selection.points if event and event.selection else []
    if not points:
        return
    index = points[0].get("point_index", points[0].get("point_number"))
    if index is None or not 0 <= int(index) < len(ids) * (len(ids) + 1) // 2:
        return
    clicked = charts.heatmap_cell(index, ids)
    if clicked != st.session_state.get("correlations.clicked"):
        st.session_state["correlations.clicked"] = clicked
        st.session_state["correlations.a"], st.session_state["correlations.b"] = clicked


def _pair_scatter(run: Run, a: str, b: str) -> None:
    columns = document_sample(run.key, run.n_documents)
    row_a, row_b = run.query_row(a), run.query_row(b)
    x = np.asarray(run.scores[row_a])[columns]
    y = np.asarray(run.scores[row_b])[columns]
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 else float("nan")
    sampled = f"{len(columns):,} sampled documents" if len(columns) < run.n_documents else "all documents"
    figure = charts.score_scatter(x, y, f"{a} score", f"{b} score", run.doc_ids[columns],
                                  f"{a} vs {b} over {sampled} (r = {r:.3f})")
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
    st.caption("Pearson correlation of two queries' scores over all documents. Click a cell to compare the pair.")
    event = widgets.chart(charts.correlation_heatmap(matrix, ids, tasks), key="correlations.heatmap",
                          name="query_correlations", selectable=True)
    _apply_click(event, ids)

    url_state.from_url("correlations.a", "a", None, options=ids)
    url_state.from_url("correlations.b", "b", None, options=ids)
    left, right = st.columns(2)
    a = left.selectbox("Query A", ids, key="correlations.a", placeholder="click a cell, or choose")
    b = right.selectbox("Query B", ids, key="correlations.b", placeholder="click a cell, or choose")
    url_state.to_url("a", a)
    url_state.to_url("b", b)
    if a is not None and b is not None:
        _pair_scatter(run, a, b)

    st.subheader("Mean correlation per task pair")
    task_table = require_table(run, "task_correlations")
    widgets.table(task_table, key="correlations.tasks", name="task_correlations",
                  column_config={"mean_pearson": st.column_config.NumberColumn(format="%.3f"),
                                 "std_pearson": st.column_config.NumberColumn(format="%.3f"),
                                 "mean_p_value": st.column_config.NumberColumn(format="%.2e"),
                                 "frac_significant": st.column_config.NumberColumn(format="%.2f")})


if __name__ == "__main__":
    render()
