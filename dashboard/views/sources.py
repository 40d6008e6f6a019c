"""Sources: how over- or under-represented each corpus source is among each task's top (bottom) k documents,
relative to its share of the corpus, next to the range k random documents would give; click a bar for the
documents behind it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from scipy.stats import hypergeom

from dashboard import charts, labels_view, url_state, widgets
from dashboard.run import Run, RunKey, analysis_table, current_run, document_texts, require_table
from precompute.analysis.statistics import WIDTH_ZERO
from precompute.rundir import layout
from precompute.rundir.reader import read_parquet_file

SIDES = ["top", "bottom"]
LISTED = 100  # documents listed behind a bar
SNIPPET = 160


def with_chance_band(table: pd.DataFrame, n_documents: int) -> pd.DataFrame:
    """Rows for k < D (k = D is ×1 by definition), with `chance_low` / `chance_high`: the 2.5% and 97.5% points of
    the multiplier when k documents are drawn at random (hypergeometric), unless the table has them already."""
    table = table[table["k"] < n_documents].copy()
    if {"chance_low", "chance_high"} <= set(table.columns):
        return table
    k = table["k"].to_numpy(dtype=np.int64)
    base = table["base_share"].to_numpy(dtype=np.float64)
    in_corpus = np.rint(base * n_documents).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for column, quantile in (("chance_low", 0.025), ("chance_high", 0.975)):
            table[column] = hypergeom.ppf(quantile, n_documents, in_corpus, k) / k / base
    return table


@st.cache_data(show_spinner=False, max_entries=8)
def banded_table(run_key: RunKey, _table: pd.DataFrame, n_documents: int) -> pd.DataFrame:
    return with_chance_band(_table, n_documents)


@st.cache_resource(show_spinner=False, max_entries=8)
def category_values(run_key: RunKey, _run: Run, column: str, labels_revision: int = 0) -> np.ndarray:
    """Each document's value of a categorical column (`source`, a metadata column, `<column>_family`: the part
    before ":" of `family:detail` values, or the researcher's labels at `labels_revision`), as strings."""
    if column == "source":
        return _run.doc_sources
    if column == labels_view.LABEL_COLUMN:
        return labels_view.label_values(_run)
    base = column[: -len("_family")] if column.endswith("_family") else column
    values = read_parquet_file(Path(run_key[0]) / layout.DOCUMENTS, [base])[base].astype(str)
    return (values.str.split(":").str[0] if base != column else values).to_numpy(dtype=object)


def multipliers_figure(shown: pd.DataFrame, by: str, side: str):
    """The small multiples of one side (rows of a banded multiplier table)."""
    title = f"{by.capitalize()} share among each task's {side} k documents ÷ its share of the corpus"
    return charts.source_small_multiples(shown, title)


def opening_figure(table: pd.DataFrame, n_documents: int):
    """The chart as the page opens (by source, top side) from source_multipliers: the report's; None when the
    corpus is too small for a k below its size."""
    banded = with_chance_band(table, n_documents)
    shown = banded[banded["side"] == SIDES[0]]
    return None if shown.empty else multipliers_figure(shown, "source", SIDES[0])


def breakdown(run: Run) -> tuple[str, pd.DataFrame]:
    """The document column to break down by (?by=, when the run has several) and its multiplier table."""
    categories = analysis_table(run.key, "category_multipliers")
    columns = sorted(categories["column"].astype(str).unique()) if categories is not None else []
    columns += labels_view.breakdown_columns(run)  # the researcher's labels, computed only when chosen
    if len(columns) < 2:
        return "source", require_table(run, "source_multipliers")
    by = url_state.bound(st.radio, "Break down by", key="sources.by", param="by",
                         default="source" if "source" in columns else columns[0], options=columns,
                         horizontal=True, what="document column")
    chosen = labels_view.breakdown_table(run) if by == labels_view.LABEL_COLUMN else \
        categories[categories["column"] == by]
    chosen = chosen.drop(columns="column")
    return by, chosen.rename(columns={"category": "source"}).reset_index(drop=True)


@st.cache_data(show_spinner="Finding the documents behind the bar…", max_entries=16)
def task_side_hits(run_key: RunKey, _run: Run, task: str, side: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(how many of the task's queries rank each document in their `side` k, each document's summed score over
    them): independent of the column broken down by, so a new labels revision does not rank the rows again."""
    rows = np.flatnonzero(_run.queries["task"].astype(str).to_numpy() == task)
    sign = 1.0 if side == "top" else -1.0
    hits = np.zeros(_run.n_documents, dtype=np.int32)
    total = np.zeros(_run.n_documents, dtype=np.float64)
    k = min(int(k), _run.n_documents)
    for row in rows:
        values = np.asarray(_run.scores[row])
        total += values
        chosen = np.argpartition(-sign * values, k - 1)[:k] if k < _run.n_documents else slice(None)
        hits[chosen] += 1
    return hits, total


@st.cache_data(show_spinner="Finding the documents behind the bar…", max_entries=64)
def documents_behind(run_key: RunKey, _run: Run, task: str, side: str, k: int, source: str,
                     by: str = "source", labels_revision: int = 0) -> pd.DataFrame:
    """Documents of category `source` (of column `by`) in the `side` k of the task's queries: how many queries rank
    them there, mean score."""
    n_rows = int(np.count_nonzero(_run.queries["task"].astype(str).to_numpy() == task))
    sign = 1.0 if side == "top" else -1.0
    hits, total = task_side_hits(run_key, _run, task, side, k)
    columns = np.flatnonzero((category_values(run_key, _run, by, labels_revision) == source) & (hits > 0))
    mean = total[columns] / max(n_rows, 1)
    order = np.lexsort((-sign * mean, -hits[columns]))[:LISTED]
    columns = columns[order]
    texts = document_texts(run_key)
    return pd.DataFrame({"doc_id": _run.doc_ids[columns], "queries_ranking_it": hits[columns],
                         "of_queries": n_rows, "mean_score": total[columns] / max(n_rows, 1),
                         "text": [" ".join(str(texts.iloc[int(c)])[:SNIPPET].split()) for c in columns]})


def _width_zero_note(shown: pd.DataFrame, by: str, side: str) -> None:
    """Says what a 95% interval of width 0 in the table means (e.g. ×0 [0, 0])."""
    if not {"ci_low", "ci_high"} <= set(shown.columns):
        return
    low, high = shown["ci_low"].to_numpy(dtype=float), shown["ci_high"].to_numpy(dtype=float)
    n_zero = int(np.count_nonzero(np.isfinite(low) & (low == high)))
    if n_zero:
        st.caption(f"{n_zero:,} of {len(shown):,} rows have a 95% interval of width 0 ({WIDTH_ZERO}): e.g. ×0 "
                   f"[0, 0] when no query of the task has a document of that {by} among its {side} k, so no "
                   "resample of the queries can find one.")


def _apply_click(state) -> None:
    """A clicked bar (new since the last run) chooses task, source and k below (before they are drawn)."""
    points = (state or {}).get("selection", {}).get("points", [])
    clicked = tuple(points[0].get("customdata") or ()) if points else ()
    if len(clicked) == 3 and clicked != st.session_state.get("sources.clicked"):
        st.session_state["sources.clicked"] = clicked
        st.session_state["sources.task"], st.session_state["sources.source"] = clicked[0], clicked[1]
        st.session_state["sources.k"] = int(clicked[2])


def render() -> None:
    run = current_run()
    st.title("Sources")
    by, table = breakdown(run)
    revision = labels_view.revision(run) if by == labels_view.LABEL_COLUMN else 0
    table = banded_table((*run.key, by, revision), table, run.n_documents)
    if table.empty:
        st.info("The corpus is too small for a top k below its size.")
        return
    side = url_state.bound(st.radio, "Side", key="sources.side", param="side", default=SIDES[0], options=SIDES,
                           horizontal=True, help="top: most positive documents; bottom: most negative")
    shown = table[table["side"] == side]
    _apply_click(st.session_state.get("sources.bars"))
    st.caption("Bars: one per k (k below the corpus size); whiskers: 95% bootstrap interval over the task's "
               "queries; grey: the 95% range if the k documents were drawn at random; dotted line: ×1. "
               "Click a bar for its documents.")
    widgets.chart(multipliers_figure(shown, by, side), key="sources.bars",
                  name=f"{by}_multipliers_{side}", selectable=True)
    widgets.table(shown.rename(columns={"source": by}), key="sources.table", name=f"{by}_multipliers_{side}")
    _width_zero_note(shown, by, side)

    st.subheader("Documents behind a bar")
    st.caption("Click a bar above, or choose the task, source and k here.")
    tasks = sorted(shown["task"].astype(str).unique())
    sources = sorted(shown["source"].astype(str).unique())
    ks = sorted(int(k) for k in shown["k"].unique())
    left, middle, right = st.columns(3)
    task = url_state.bound(left.selectbox, "Task", key="sources.task", param="task", default=tasks[0],
                           options=tasks, what="task")
    source = url_state.bound(middle.selectbox, by.capitalize(), key="sources.source", param="source",
                             default=sources[0], options=sources, what=by)
    k = url_state.bound(right.selectbox, "k", key="sources.k", param="k", default=ks[0], parse=int, options=ks,
                        what="k", format_func=lambda value: f"{value:,}")
    behind = documents_behind(run.key, run, task, side, k, source, by, revision)
    if behind.empty:
        st.info(f"No document with {by} `{source}` is in that range.")
    else:
        widgets.table(behind, key="sources.documents", name=f"documents_{task}_{side}_{k}_{source}",
                      opens=("documents", "doc", "doc_id"),
                      column_config={"mean_score": st.column_config.NumberColumn(format="%.4g"),
                                     "text": st.column_config.TextColumn(width="large")})
    labels_view.panel(run)


if __name__ == "__main__":
    render()
