"""Compare runs: two runs side by side (e.g. two model sizes, ekfac vs identity) on their shared queries (by id)
and shared documents (by id): score correlation, top-k overlap per query and per task, one query's top documents
in both (shared ones marked, rank changes, text), and the two runs' findings side by side."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import streamlit as st

from precompute import rundir

from dashboard import charts, published_view, query_view, run_choice, url_state, widgets
from dashboard.run import RunError, current_run, document_texts, findings, load_run
from dashboard import lds_view, validation_view
from dashboard.findings_view import claim_and_scope
from dashboard.run_compare import (KS, alignment, finding_differences, findings_side_by_side, per_query_agreement,
                                   per_task, top_list)
from precompute.analysis.run_difference import TABLES
from precompute.analysis.statistics import N_RESAMPLES, interval_note, number_text

TOP_SHOWN = 10


def _top_lists(run, other, shared: list[str], names: tuple[str, str]) -> None:
    st.subheader("One query in both runs")
    query_id = url_state.bound(st.selectbox, "Query", key="compare.q", param="q", default=shared[0],
                               options=shared, what="query")
    st.caption(f"Each run's top {TOP_SHOWN} by raw score. In both top: also in the other run's top {TOP_SHOWN}; "
               "rank in the other run: blank when the document is not in that run; rank change: rank here − rank "
               "there (negative: ranked higher here). Choose a row to open the document.")
    config = {"in_both_top": st.column_config.CheckboxColumn("in both top"),
              "score": st.column_config.NumberColumn(format="%.4g"),
              "text": st.column_config.TextColumn(width="large")}
    for (this, that, name, key) in ((run, other, names[0], "a"), (other, run, names[1], "b")):
        st.markdown(f"**{widgets.markdown_text(name)}**")
        listing = top_list(this, that, query_id, TOP_SHOWN, document_texts(this.key))
        widgets.table(listing, key=f"compare.top_{key}", name=f"top_{query_id}_{key}",
                      opens=("documents", "doc", "doc_id") if this is run else None, column_config=config)


def overlap_ks(n_documents: int) -> list[int]:
    """The top-k sizes worth offering: k below the number of shared documents (at k >= n every list is all of them)."""
    return [k for k in KS if k < n_documents] or [KS[0]]


def first_sharing_queries(choices: list[str], query_ids: set[str]) -> str:
    """The first offered run that shares a query id with this run (the first run when none does)."""
    for choice in choices:
        try:
            ids = {str(row.get("id")) for row in rundir.read_jsonl(os.path.join(choice, rundir.QUERIES))}
        except (OSError, ValueError):
            continue
        if ids & query_ids:
            return choice
    return choices[0]


def _contrast_text(row: dict) -> str:
    """'−0.042 [−0.069, −0.015]' (this − other) or '1.2× [1.05, 1.4]' (this ÷ other); a degenerate or missing
    interval says why."""
    low, high = row["ci_low"], row["ci_high"]
    text = (f"{number_text(row['contrast'])}{'×' if row['measure'] == 'ratio' else ''} "
            f"[{number_text(low)}, {number_text(high)}]")
    if not (np.isfinite(low) and np.isfinite(high)):
        return text + " (no interval: too many resamples undefined, e.g. too few distinct queries to form pairs)"
    return text + interval_note(low, high)


def _differences(run, other, names: tuple[str, str]) -> None:
    """The findings both runs define on their shared queries, each contrast with its paired interval."""
    st.subheader("Differences between the runs' findings")
    table = finding_differences(run.key, other.key)
    if table.empty:
        st.info("No finding both runs define on their shared queries: the paired differences need each run's "
                f"analysis tables ({', '.join(TABLES)}) and, on the shared queries, the factual task and a reasoning "
                "task with enough queries.")
        return
    st.caption(f"The findings recomputed on the queries both runs share (same id and task), in "
               f"**{widgets.markdown_text(names[0])}** (this run) and **{widgets.markdown_text(names[1])}**, and "
               f"their contrast (this − other for a difference, this ÷ other for a ratio) with a 95% paired "
               f"bootstrap interval ({N_RESAMPLES:,} resamples: one draw of the shared query ids within each task, "
               "applied to both runs). `differs` when the interval excludes no contrast (0, or 1×); each row on its "
               "own, not adjusted for the number of rows. Covered: the "
               "correlation findings and the per-nat magnitude finding; the others need each query's full ranking "
               "and are compared above without an interval.")
    shown = pd.DataFrame({
        "finding": [" · ".join(claim_and_scope(name)) for name in table["finding"]],
        "this run": table["effect_a"], "other run": table["effect_b"],
        "contrast [95% CI]": [_contrast_text(row) for row in table.to_dict("records")],
        "verdict": table["verdict"], "queries": table["n_queries"]})
    widgets.table(shown, key="compare.differences", name="compare_finding_differences", export=table,
                  column_config={"this run": st.column_config.NumberColumn(format="%.3g"),
                                 "other run": st.column_config.NumberColumn(format="%.3g")})


def render() -> None:
    run = current_run()
    st.title("Compare runs")
    this_dir = st.session_state["run_dir"]
    others = [choice for choice in run_choice.run_choices() if choice != this_dir]
    if not others:
        st.info("Only one run is offered. Start the app with two runs to compare them: "
                "`streamlit run dashboard/app.py -- --run runs/a --run runs/b`.")
        return
    left, right = st.columns([3, 1])
    second_dir = url_state.bound(left.selectbox, "Second run", key="compare.run2", param="run2",
                                 default=first_sharing_queries(others, set(run.queries["id"].astype(str))),
                                 options=others, what="run", format_func=run_choice.display_name)
    try:
        other = load_run(second_dir)
    except RunError as err:
        st.error(f"**Cannot open run `{run_choice.display_name(second_dir)}`.** {err}")
        return
    names = (run_choice.display_name(this_dir), run_choice.display_name(second_dir))
    shared, _, _, columns_a, _ = alignment(run.key, other.key, run, other)
    ks = overlap_ks(len(columns_a))
    k = url_state.bound(right.selectbox, "Top k for overlap", key="compare.k", param="k", default=min(100, ks[-1]),
                        parse=int, options=ks, what="k")
    st.caption(f"This run **{widgets.markdown_text(names[0])}** ({run.n_queries:,} queries × {run.n_documents:,} "
               f"documents) and **{widgets.markdown_text(names[1])}** ({other.n_queries:,} × "
               f"{other.n_documents:,}) share {len(shared):,} queries and {len(columns_a):,} documents (by id).")
    published_view.compare_note(run, other, len(shared), len(columns_a))  # imported runs: ids follow prompts
    if not shared or len(columns_a) < 2:
        st.warning("The runs share no queries or too few documents (matched by id) to compare.")
        return
    agreement = per_query_agreement(run.key, other.key, k, run, other)
    left, right = st.columns(2)
    with left:
        widgets.chart(charts.histogram(agreement["pearson"].to_numpy(), "Score correlation per shared query",
                                       "Pearson r over shared documents"), key="compare.pearson",
                      name="compare_pearson")
    with right:
        overlap = agreement[f"top_{k}_overlap"].to_numpy()
        widgets.chart(charts.histogram(overlap, f"Top-{k} overlap per shared query", "fraction shared"),
                      key="compare.overlap", name=f"compare_top{k}_overlap")
        st.caption(f"Chance level: two unrelated rankings of {len(columns_a):,} shared documents share "
                   f"k/n = {min(k, len(columns_a)) / len(columns_a):.3g} of their top {k} on average.")
    st.subheader("By task")
    widgets.table(per_task(agreement, k), key="compare.tasks", name="compare_per_task")
    st.subheader("By query")
    widgets.table(query_view.with_correctness(run, agreement), key="compare.table", name="compare_per_query",
                  opens=("queries", "q", "query_id"))
    _top_lists(run, other, shared, names)

    st.subheader("Findings side by side")
    side_by_side = findings_side_by_side(findings(run.key), findings(other.key), names[0], names[1])
    if side_by_side.empty:
        st.info("Neither run has analysis/findings.json.")
    else:
        widgets.table(side_by_side, key="compare.findings", name="compare_findings")
    _differences(run, other, names)
    validation_view.compare_summaries(run, other)  # both runs' tail-patch validation
    lds_view.compare_leaderboards(run, other)  # both runs' LDS leaderboards


if __name__ == "__main__":
    render()
