"""Compare runs: two runs side by side (e.g. two model sizes, ekfac vs identity) on their shared queries (by id)
and shared documents (by id): score correlation, top-k overlap, and one query in both."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, pages, ranking, run_choice, url_state, widgets
from dashboard.run import Run, RunError, RunKey, current_run, load_run

KS = [10, 50, 100, 500, 1000]


@st.cache_data(show_spinner=False, max_entries=16)
def alignment(key_a: RunKey, key_b: RunKey, _a: Run, _b: Run):
    """(shared query ids, their rows in a and b, shared document columns in a and in b)."""
    ids_a = _a.queries["id"].tolist()
    rows_b = dict(zip(_b.queries["id"], range(_b.n_queries)))
    shared = [q for q in ids_a if q in rows_b]
    rows_a = np.array([ids_a.index(q) for q in shared], dtype=np.int64)
    if _a.n_documents == _b.n_documents and np.array_equal(_a.doc_ids, _b.doc_ids):
        columns = np.arange(_a.n_documents)
        return shared, rows_a, np.array([rows_b[q] for q in shared], dtype=np.int64), columns, columns
    in_b = _b.doc_positions.get_indexer(_a.doc_ids)
    columns_a = np.flatnonzero(in_b >= 0)
    return shared, rows_a, np.array([rows_b[q] for q in shared], dtype=np.int64), columns_a, in_b[columns_a]


def _aligned_rows(a: Run, b: Run, row_a: int, row_b: int, columns_a, columns_b):
    x, y = np.asarray(a.scores[row_a]), np.asarray(b.scores[row_b])
    if len(columns_a) != len(x):
        x = x[columns_a]
    if len(columns_b) != len(y):
        y = y[columns_b]
    return x, y


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r in float64: Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²)."""
    if len(x) < 2:
        return float("nan")
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else float("nan")


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _agreement_base(key_a: RunKey, key_b: RunKey, _a: Run, _b: Run) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One pass over the shared queries: Pearson r, and each run's top max(KS) documents (in shared columns)."""
    shared, rows_a, rows_b, columns_a, columns_b = alignment(key_a, key_b, _a, _b)
    depth = max(KS)
    pearson, tops_a, tops_b = [], [], []
    for row_a, row_b in zip(rows_a, rows_b):
        x, y = _aligned_rows(_a, _b, int(row_a), int(row_b), columns_a, columns_b)
        pearson.append(_pearson(x, y))
        tops_a.append(ranking.top_columns(x, depth))
        tops_b.append(ranking.top_columns(y, depth))
    tasks = _a.queries["task"].astype(str).to_numpy()[rows_a] if len(rows_a) else []
    table = pd.DataFrame({"query_id": shared, "task": tasks, "pearson": pearson})
    return table, np.array(tops_a, dtype=np.int64), np.array(tops_b, dtype=np.int64)


def per_query_agreement(key_a: RunKey, key_b: RunKey, k: int, _a: Run, _b: Run) -> pd.DataFrame:
    """Per shared query: Pearson r of the two runs' scores over shared documents and overlap of their top k."""
    table, tops_a, tops_b = _agreement_base(key_a, key_b, _a, _b)
    overlap = [len(np.intersect1d(a[:k], b[:k])) / max(len(a[:k]), 1) for a, b in zip(tops_a, tops_b)]
    return table.assign(**{f"top_{k}_overlap": overlap})


def _top_list(run: Run, query_id: str, k: int = 10) -> pd.DataFrame:
    top, values, _, _ = ranking.ranked_documents(run.key, run, run.query_row(query_id), "raw", k)
    ids = run.doc_ids[top]
    return pd.DataFrame({"rank": np.arange(1, len(top) + 1), "doc_id": ids, "score": values,
                         "source": run.doc_sources[top], "open": [pages.url("documents", doc=d) for d in ids]})


def render() -> None:
    run = current_run()
    st.title("Compare runs")
    others = [choice for choice in run_choice.run_choices() if choice != st.session_state["run_dir"]]
    if not others:
        st.info("Only one run is offered. Start the app with two runs to compare them: "
                "`streamlit run dashboard/app.py -- --run runs/a --run runs/b`.")
        return
    url_state.from_url("compare.run2", "run2", others[0], options=others)
    url_state.from_url("compare.k", "k", 100, parse=int, options=KS)
    left, right = st.columns([3, 1])
    second_dir = left.selectbox("Second run", others, key="compare.run2")
    k = right.selectbox("Top k for overlap", KS, key="compare.k")
    url_state.to_url("run2", second_dir)
    url_state.to_url("k", k)
    try:
        other = load_run(second_dir)
    except RunError as err:
        st.error(f"**Cannot open run `{second_dir}`.** {err}")
        return

    shared, _, _, columns_a, _ = alignment(run.key, other.key, run, other)
    st.caption(f"{len(shared):,} shared queries and {len(columns_a):,} shared documents "
               f"({run.n_queries:,} × {run.n_documents:,} here, {other.n_queries:,} × {other.n_documents:,} there).")
    if not shared or len(columns_a) < 2:
        st.warning("The runs share no queries or too few documents (matched by id) to compare.")
        return
    agreement = per_query_agreement(run.key, other.key, k, run, other)
    left, right = st.columns(2)
    with left:
        widgets.chart(charts.histogram(agreement["pearson"].to_numpy(), "Score correlation per shared query",
                                       "Pearson r"), key="compare.pearson", name="compare_pearson")
    with right:
        overlap = agreement[f"top_{k}_overlap"].to_numpy()
        widgets.chart(charts.histogram(overlap, f"Top-{k} overlap per shared query", "fraction shared"),
                      key="compare.overlap", name=f"compare_top{k}_overlap")
    listing = agreement.assign(open=[pages.url("queries", q=q) for q in agreement["query_id"]])
    widgets.table(listing, key="compare.table", name="compare_per_query",
                  column_config={"open": st.column_config.LinkColumn("open", display_text="open query")})

    st.subheader("One query in both runs")
    url_state.from_url("compare.q", "q", shared[0], options=shared)
    query_id = st.selectbox("Query", shared, key="compare.q")
    url_state.to_url("q", query_id)
    link_config = {"open": st.column_config.LinkColumn("open", display_text="open")}
    left, right = st.columns(2)
    with left:
        st.caption(f"This run: {widgets.markdown_text(run.path)}")
        widgets.table(_top_list(run, query_id), key="compare.top_a", name=f"top_{query_id}_a",
                      column_config=link_config)
    with right:
        st.caption(f"Second run: {widgets.markdown_text(other.path)} (its documents link into this run when shared)")
        widgets.table(_top_list(other, query_id), key="compare.top_b", name=f"top_{query_id}_b",
                      column_config=link_config)


if __name__ == "__main__":
    render()
