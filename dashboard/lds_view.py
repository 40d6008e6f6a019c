"""The ranking-method leaderboard on the pages: how well each method's scores predict the model's PBRF response to
up-weighting random document sets (the linear datamodeling score, LDS), beside the tail-patch validation.

Reads RUN/analysis/lds_summary.parquet, lds_queries.parquet and counterfactual.parquet (written by `precompute
counterfactual`, see precompute/analysis/tables/lds.py) and validation_summary.parquet (`precompute validate`);
nothing here imports torch. `leaderboard`, `leaderboard_display`, `leaderboard_export`, `interval_figure`,
`query_figure` and `settings_caption` are pure; the three render functions are what the overview, queries and
compare pages call.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import charts, url_state, widgets
from dashboard.run import Run, analysis_table
from dashboard.validation_view import _interval, _number

HOW_TO = "`python -m precompute counterfactual --run DIR`"
ALL_TASKS = "all"  # lds_summary's row over all queries
IDENTITY = "identity"
WHAT_EACH_TEST_REWARDS = (
    "**LDS vs PBRF** (Spearman, across M random document sets, between the model's measured proximal Bregman "
    "response to up-weighting each set and the sum of a method's scores over the set) rewards estimating what "
    "damped influence functions estimate, curvature included, so EK-FAC can win or lose it fairly against a plain "
    "gradient dot product.",
    "**Tail-patch** (one SGD step on a query's top-k documents against random k-sets) rewards the plain gradient "
    "dot product by construction — one step changes log p by lr · Σ⟨∇log p, −∇L_d⟩, which is identity "
    "influence — so it shows that top documents matter, not which method ranks them better.")
# (label on screen and in the CSV, the summary's (estimate, low, high) columns, shown as a percentage)
LDS_MEASURES = [("LDS", ("lds_mean", "lds_low", "lds_high"), False),
                ("LDS − identity", ("minus_identity", "minus_identity_low", "minus_identity_high"), False)]
TAIL_MEASURES = [("tail-patch top-k Δ", ("top_delta_mean", "top_delta_mean_low", "top_delta_mean_high"), False),
                 ("tail-patch top beats all random",
                  ("frac_top_beats_all", "frac_top_beats_all_low", "frac_top_beats_all_high"), True)]
BOUNDS = ("", " low", " high")  # the leaderboard's column suffixes


def summary_rows(run: Run) -> pd.DataFrame | None:
    frame = analysis_table(run.key, "lds_summary")
    return None if frame is None or frame.empty else frame


def tasks(summary: pd.DataFrame) -> list[str]:
    """'all' first, then the summary's tasks in its order."""
    found = list(dict.fromkeys(summary["task"].astype(str)))
    return [ALL_TASKS] + [task for task in found if task != ALL_TASKS]


def leaderboard(summary: pd.DataFrame, validation: pd.DataFrame | None, task: str = ALL_TASKS) -> pd.DataFrame:
    """One row per ranking method, best mean LDS first: queries, sets, LDS and its difference from identity with
    their 95% intervals, and (task 'all' only: the tail-patch summary has no tasks) the tail-patch top-k Δ and
    beats-all-random share with theirs; numbers only (NaN where absent)."""
    rows = summary[summary["task"].astype(str) == task]
    tail = validation.set_index("method") if validation is not None and task == ALL_TASKS else None
    board = []
    for _, row in rows.iterrows():
        entry = {"method": row["method"], "queries": int(row["n_queries"]), "sets": int(row["n_sets"])}
        for label, columns, _ in LDS_MEASURES:
            entry.update({label + name: _number(row, column) for name, column in zip(BOUNDS, columns)})
        patch = tail.loc[row["method"]] if tail is not None and row["method"] in tail.index else pd.Series()
        for label, columns, _ in TAIL_MEASURES:
            entry.update({label + name: _number(patch, column) for name, column in zip(BOUNDS, columns)})
        board.append(entry)
    columns = ["method", "queries", "sets"] + [label + name for label, _, _ in LDS_MEASURES + TAIL_MEASURES
                                               for name in BOUNDS]
    frame = pd.DataFrame(board, columns=columns)
    return frame.sort_values("LDS", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _board_interval(row: pd.Series, label: str, percent: bool) -> str:
    renamed = pd.Series({"x": row[label], "x_low": row[label + " low"], "x_high": row[label + " high"]})
    return _interval(renamed, "x", percent)


def leaderboard_display(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard for the screen: each measure as "estimate [low, high]" text (the CSV keeps the numbers)."""
    shown = board[["method", "queries", "sets"]].copy()
    for label, _, percent in LDS_MEASURES + TAIL_MEASURES:
        shown[label] = [_board_interval(row, label, percent) for _, row in board.iterrows()]
    return shown


def interval_figure(board: pd.DataFrame, title: str) -> go.Figure:
    """Each method's mean LDS (left) and its paired difference from identity (right) with 95% intervals, as
    horizontal error bars; best method on top."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("mean LDS", "LDS − identity (paired)"))
    methods = board["method"].astype(str).tolist()
    for column, (label, colour) in enumerate((("LDS", "#4c78a8"), ("LDS − identity", charts.POSITIVE)), start=1):
        value = board[label].to_numpy(np.float64)
        low, high = board[label + " low"].to_numpy(np.float64), board[label + " high"].to_numpy(np.float64)
        fig.add_trace(go.Scatter(
            x=value, y=methods, mode="markers", name=label, marker=dict(color=colour, size=11),
            error_x=dict(type="data", symmetric=False, array=high - value, arrayminus=value - low, thickness=2),
            customdata=np.stack([low, high], axis=1),
            hovertemplate="%{y}: %{x:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra>" + label + "</extra>"),
            row=1, col=column)
        fig.add_vline(x=0.0, line_dash="dot", line_color="grey", row=1, col=column)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(showlegend=False)
    return charts._layout(fig, title, height=max(260, 70 + 38 * len(methods)))


def settings_caption(manifest: dict) -> str:
    """ε, the sets and the solver's cost as the manifest's `counterfactual` entry records them."""
    settings = manifest.get("counterfactual") or {}
    if not settings:
        return ""
    epsilon = pd.to_numeric(settings.get("epsilon_used"), errors="coerce")
    parts = [f"ε = {epsilon:.3g}" + (" (auto)" if settings.get("epsilon") == "auto" else "")
             if pd.notna(epsilon) else "ε not recorded",
             f"{settings.get('sets')} random sets of {settings.get('set_size')} documents",
             f"{settings.get('anchor_docs')} anchor documents",
             f"Newton steps of at most {settings.get('max_iterations')} conjugate-gradient iterations each, "
             f"to ‖∇F‖ ≤ {settings.get('tolerance', '?')} × ‖∇F(θs)‖"]
    cost = settings.get("solve_cost") or {}
    if cost:
        parts.append(f"PBRF solve {float(cost.get('seconds', math.nan)):.1f} s wall, "
                     f"{float(cost.get('cpu_seconds', math.nan)):.1f} s CPU on {cost.get('threads', '?')} thread(s)")
    converged = settings.get("convergence") or {}
    if converged:
        parts.append(f"solver residual ‖∇F‖/‖∇F(θs)‖ median {converged['median_relative_grad_norm']:.2g}, "
                     f"largest {converged['max_relative_grad_norm']:.2g}")
    slopes = [float(r["slope"]) for r in settings.get("linearity") or [] if r.get("slope") is not None]
    if slopes:
        parts.append("linearity Δ(2ε)/Δ(ε) " + ", ".join(f"{v:.3f}" for v in slopes) + " (2 when linear)")
    if settings.get("source"):
        parts.append(f"responses {settings['source']}")
    return " · ".join(parts) + "."


def leaderboard_section(run: Run) -> None:
    """Overview page: the leaderboard (task chosen), its interval chart, what each test rewards, ε and cost."""
    st.subheader("Ranking-method leaderboard (LDS against the PBRF response)")
    summary = summary_rows(run)
    if summary is None:
        st.caption(f"No counterfactual in this run: {HOW_TO} computes each method's LDS against the PBRF response.")
        return
    task = url_state.bound(st.selectbox, "Queries", key="lds.task", param="lds_task", default=ALL_TASKS,
                           options=tasks(summary), what="task",
                           format_func=lambda t: "all tasks" if t == ALL_TASKS else f"task {t}")
    board = leaderboard(summary, analysis_table(run.key, "validation_summary"), task)
    widgets.table(leaderboard_display(board), key="lds.leaderboard", name=f"lds_leaderboard_{task}", export=board)
    widgets.chart(interval_figure(board, "LDS per ranking method (95% intervals)" +
                                  ("" if task == ALL_TASKS else f", task {task}")),
                  key="lds.chart", name=f"lds_intervals_{task}")
    st.markdown("\n".join(f"- {sentence}" for sentence in WHAT_EACH_TEST_REWARDS))
    st.caption("LDS: mean over queries; intervals 95%, crossed bootstrap over queries and sets. LDS − identity: "
               "paired over the same queries and resamples (empty without an identity run: give one to "
               "`--strategy-runs`). Tail-patch columns: all validated queries (empty per task or without "
               "`precompute validate`). " + settings_caption(run.manifest))


def query_figure(frame: pd.DataFrame, query_id: str, method: str, lds: float) -> go.Figure:
    """One query and method: measured PBRF Δ log p against the predicted Σ_{d∈S} score(q, d), one point per set,
    the query's LDS (their Spearman) in the title."""
    rows = frame[(frame["query_id"] == query_id) & (frame["method"] == method)].sort_values("set")
    fig = go.Figure(go.Scatter(
        x=rows["predicted"], y=rows["measured"], mode="markers+text", text=rows["set"].astype(str),
        textposition="top center", marker=dict(color="#4c78a8", size=10), customdata=rows["set_tokens"],
        hovertemplate="set %{text} (%{customdata} tokens)<br>predicted %{x:.4g}<br>measured %{y:.4g} nats"
                      "<extra></extra>"))
    fig.add_hline(y=0.0, line_dash="dot", line_color="grey")
    spearman = "undefined (a constant column)" if math.isnan(lds) else f"{lds:.3f}"
    fig.update_layout(xaxis_title=f"predicted: Σ over the set of {method} scores",
                      yaxis_title="measured PBRF Δ log p (nats)")
    return charts._layout(fig, f"{query_id} · {method}: {len(rows)} sets, Spearman (LDS) = {spearman}", height=400)


def query_lds(per_query: pd.DataFrame | None, query_id: str, method: str) -> float:
    if per_query is None:
        return math.nan
    match = per_query[(per_query["query_id"] == query_id) & (per_query["method"] == method)]
    return _number(match.iloc[0], "lds") if len(match) else math.nan


def query_panel(run: Run, query_id: str) -> None:
    """Queries page: measured vs predicted Δ across the sets for a chosen method (only when the run has them)."""
    frame = analysis_table(run.key, "counterfactual")
    if frame is None or frame.empty or not (frame["query_id"] == query_id).any():
        return
    st.subheader("Counterfactual: PBRF response across random document sets")
    methods = list(dict.fromkeys(frame["method"].astype(str)))
    own = str(run.manifest.get("strategy") or "")
    method = url_state.bound(st.selectbox, "Ranking method", key="queries.lds_method", param="lds_method",
                             default=own if own in methods else methods[0], options=methods, what="ranking method")
    lds = query_lds(analysis_table(run.key, "lds_queries"), query_id, method)
    widgets.chart(query_figure(frame, query_id, method, lds), key="lds.query", name=f"lds_{query_id}")
    st.caption("Each point is one random document set: x is the sum of the method's scores over its documents, y "
               "the model's measured response (PBRF) to up-weighting them. The LDS is their rank correlation; "
               + settings_caption(run.manifest))


def _compare_table(run: Run, summary: pd.DataFrame, key: str) -> None:
    st.caption(f"{widgets.markdown_text(str(run.path))} · {settings_caption(run.manifest)}")
    board = leaderboard(summary, analysis_table(run.key, "validation_summary"))
    widgets.table(leaderboard_display(board), key=key, name=key.replace(".", "_"), export=board)


def compare_leaderboards(run: Run, other: Run) -> None:
    """Compare page: both runs' leaderboards (all queries) side by side when both have one."""
    summaries = summary_rows(run), summary_rows(other)
    st.subheader("Ranking-method leaderboard (LDS)")
    if any(summary is None for summary in summaries):
        st.caption(f"Shown when both runs have a counterfactual ({HOW_TO}).")
        return
    for column, this, summary, key in zip(st.columns(2), (run, other), summaries, ("lds.compare_a", "lds.compare_b")):
        with column:
            _compare_table(this, summary, key)
