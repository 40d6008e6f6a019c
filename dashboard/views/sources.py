"""Sources: how over- or under-represented each corpus source is among a task's top (bottom) k documents,
relative to its base rate; click a bar for the documents behind it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, pages, url_state, widgets
from dashboard.run import Run, RunKey, current_run, require_table

SIDES = ["top", "bottom"]
LISTED = 100  # documents listed behind a bar


@st.cache_data(show_spinner="Finding the documents behind the bar…", max_entries=64)
def documents_behind(run_key: RunKey, _run: Run, task: str, side: str, k: int, source: str) -> pd.DataFrame:
    """Documents of `source` in the `side` k of the task's queries: how many queries rank them there, mean score."""
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
    of_source = (_run.doc_sources == source) & (hits > 0)
    columns = np.flatnonzero(of_source)
    mean = total[columns] / max(len(rows), 1)
    order = np.lexsort((-sign * mean, -hits[columns]))[:LISTED]
    columns = columns[order]
    return pd.DataFrame({"doc_id": _run.doc_ids[columns], "queries_ranking_it": hits[columns],
                         "mean_score": total[columns] / max(len(rows), 1), "column": columns})


def _apply_click(event) -> None:
    points = event.selection.points if event and event.selection else []
    if not points:
        return
    clicked = tuple(points[0].get("customdata") or ())
    if len(clicked) == 2 and clicked != st.session_state.get("sources.clicked"):
        st.session_state["sources.clicked"] = clicked
        st.session_state["sources.source"], st.session_state["sources.k"] = clicked[0], int(clicked[1])


def render() -> None:
    run = current_run()
    st.title("Sources")
    table = require_table(run, "source_multipliers")
    tasks = sorted(table["task"].astype(str).unique())
    url_state.from_url("sources.task", "task", tasks[0], options=tasks)
    url_state.from_url("sources.side", "side", SIDES[0], options=SIDES)
    left, right = st.columns(2)
    task = left.selectbox("Task", tasks, key="sources.task")
    side = right.radio("Side", SIDES, key="sources.side", horizontal=True,
                       help="top: most positive documents; bottom: most negative")
    url_state.to_url("task", task)
    url_state.to_url("side", side)

    shown = table[(table["task"] == task) & (table["side"] == side)]
    title = f"{task}: source share among the {side} k documents ÷ share in the corpus"
    event = widgets.chart(charts.source_multipliers(shown, title), key="sources.bars",
                          name=f"source_multipliers_{task}_{side}", selectable=True)
    _apply_click(event)
    widgets.table(shown, key="sources.table", name=f"source_multipliers_{task}_{side}")

    st.subheader("Documents behind a bar")
    st.caption("Click a bar above, or choose the source and k here.")
    sources = sorted(shown["source"].astype(str).unique())
    ks = sorted(int(k) for k in shown["k"].unique())
    url_state.from_url("sources.source", "source", sources[0], options=sources)
    url_state.from_url("sources.k", "k", ks[0], parse=int, options=ks)
    left, right = st.columns(2)
    source = left.selectbox("Source", sources, key="sources.source")
    k = right.selectbox("k", ks, key="sources.k", format_func=lambda value: f"{value:,}")
    url_state.to_url("source", source)
    url_state.to_url("k", k)

    behind = documents_behind(run.key, run, task, side, k, source)
    if behind.empty:
        st.info("No document of this source is in that range.")
        return
    listing = behind.assign(open=[pages.url("documents", doc=doc) for doc in behind["doc_id"]]).drop(columns="column")
    widgets.table(listing, key="sources.documents", name=f"documents_{task}_{side}_{k}_{source}",
                  column_config={"open": st.column_config.LinkColumn("open", display_text="open document")})


if __name__ == "__main__":
    render()
