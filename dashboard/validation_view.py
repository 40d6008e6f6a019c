"""Counterfactual validation on the pages: did training on a query's top documents change its answer?

Reads RUN/analysis/validation.parquet and validation_summary.parquet (written by `precompute validate`, see
docs/validation.md); nothing here imports torch. `query_figure`, `summary_display` and `summary_export` are
pure; the three render functions are what the queries, overview and compare pages call.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import charts, widgets
from dashboard.run import Run, analysis_table
from precompute.analysis.statistics import interval_note

HOW_TO = "`python -m precompute validate --run DIR`"
RANDOM_COLOUR = "#7f7f7f"


def validation_rows(run: Run) -> pd.DataFrame | None:
    frame = analysis_table(run.key, "validation")
    return None if frame is None or frame.empty else frame


def query_figure(frame: pd.DataFrame, query_id: str) -> go.Figure:
    """One query: Δ log p of every random k-set (box + points) and each ranking method's top-k (▲) and
    bottom-k (▼) set; y is nats."""
    rows = frame[frame["query_id"] == query_id]
    random = rows[rows["set"] == "random"]
    fig = go.Figure(go.Box(y=random["delta_logprob"], x=["random sets"] * len(random), name="random k-sets",
                           boxpoints="all", jitter=0.5, pointpos=0, marker_color=RANDOM_COLOUR,
                           customdata=random["draw"],
                           hovertemplate="random set %{customdata}: %{y:.4g}<extra></extra>"))
    ranked = rows[rows["set"] != "random"]
    for side, colour, symbol in (("top", charts.POSITIVE, "triangle-up"), ("bottom", charts.NEGATIVE, "triangle-down")):
        part = ranked[ranked["set"] == side]
        if len(part):
            fig.add_trace(go.Scatter(x=part["method"], y=part["delta_logprob"], mode="markers", name=f"{side}-k",
                                     marker=dict(color=colour, symbol=symbol, size=14),
                                     customdata=part["set_tokens"],
                                     hovertemplate=f"%{{x}} {side}-k: %{{y:.4g}} (%{{customdata}} tokens)"
                                                   "<extra></extra>"))
    if len(random):
        fig.add_hrect(y0=random["delta_logprob"].min(), y1=random["delta_logprob"].max(), fillcolor=RANDOM_COLOUR,
                      opacity=0.12, line_width=0)
    fig.add_hline(y=0.0, line_dash="dot", line_color="grey")
    first = rows.iloc[0] if len(rows) else None
    title = "Tail-patch: Δ log p(completion)" + (
        f" after {int(first['steps'])} SGD step(s) on k = {int(first['k'])} documents (lr {first['lr']:.3g})"
        if first is not None else "")
    fig.update_layout(yaxis_title="Δ log p (nats)", xaxis_title="ranking method", legend_orientation="h")
    return charts._layout(fig, title, height=380)


def random_band(frame: pd.DataFrame, query_id: str) -> np.ndarray:
    rows = frame[(frame["query_id"] == query_id) & (frame["set"] == "random")]
    return rows["delta_logprob"].to_numpy(dtype=float)


def query_numbers(frame: pd.DataFrame, query_id: str) -> pd.DataFrame:
    """One query's numbers behind the figure: per ranking method and side, the set's Δ log p, how many of the
    random sets it lies beyond (top: above, bottom: below) and its standardised effect against them, (Δ − mean)
    ÷ sd of the random sets' Δ (sample sd; NaN with fewer than two random sets or sd 0)."""
    random = random_band(frame, query_id)
    mean, sd = (random.mean(), random.std(ddof=1)) if len(random) > 1 else (math.nan, math.nan)
    ranked = frame[(frame["query_id"] == query_id) & (frame["set"] != "random")]
    found = []
    for (method, side), part in ranked.groupby(["method", "set"], sort=False):
        value = float(part["delta_logprob"].iloc[0])
        beyond = random < value if side == "top" else random > value
        found.append({"method": method, "set": f"{side}-k", "Δ log p (nats)": value, "set tokens":
                      int(part["set_tokens"].iloc[0]) if "set_tokens" in part else None,
                      "random sets beyond": int(beyond.sum()), "random sets": len(random),
                      "standardised effect": (value - mean) / sd if sd > 0 else math.nan})
    return pd.DataFrame(found, columns=["method", "set", "Δ log p (nats)", "set tokens", "random sets beyond",
                                        "random sets", "standardised effect"])


# (label on screen and in the CSV, summary column with `_low`/`_high` bounds, shown as a percentage; shares use
# their exact Clopper–Pearson bounds `_exact_low`/`_exact_high` when the summary has them)
MEASURES = [("top-k Δ", "top_delta_mean", False), ("bottom-k Δ", "bottom_delta_mean", False),
            ("top beats all random", "frac_top_beats_all", True),
            ("bottom below all random", "frac_bottom_below_all", True),
            ("standardised effect (median)", "top_z_median", False), ("win rate vs random", "top_win_rate", True),
            ("win rate per set-token", "top_win_rate_per_token", True)]


def _number(row: pd.Series, name: str) -> float:
    value = pd.to_numeric(row.get(name), errors="coerce")
    return math.nan if value is None or pd.isna(value) else float(value)


def _bounds(row: pd.Series, name: str, percent: bool) -> tuple[float, float, bool]:
    """(low, high, exact): a share's exact interval when the summary has one, else the bootstrap's."""
    exact = (_number(row, name + "_exact_low"), _number(row, name + "_exact_high"))
    if percent and not any(math.isnan(bound) for bound in exact):
        return exact[0], exact[1], True
    return _number(row, name + "_low"), _number(row, name + "_high"), False


def _interval(row: pd.Series, name: str, percent: bool = False) -> str:
    value = _number(row, name)
    low, high, exact = _bounds(row, name, percent)
    if math.isnan(value):
        return "–"
    if exact:
        return f"{value:.1%} [{low:.1%}, {high:.1%}] exact"
    if percent:
        return f"{value:.0%} [{low:.0%}, {high:.0%}]{interval_note(low, high)}"
    return f"{value:.3g} [{low:.3g}, {high:.3g}]{interval_note(low, high)}"


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """Ranking method → top-k Δ, bottom-k Δ, random band, beats-every-random share, standardised effect and win
    rate vs random, each with its 95% interval (as text, for the screen; `summary_export` for the CSV)."""
    rows = []
    for _, row in summary.iterrows():
        shown = {"method": row["method"], "queries": int(row["n_queries"]),
                 "random Δ (mean, sd)": f"{_number(row, 'random_delta_mean'):.3g} ± "
                                        f"{_number(row, 'random_sd_mean'):.3g}",
                 "chance": f"{_number(row, 'chance_beats_all'):.0%}"}
        shown.update({label: _interval(row, column, percent) for label, column, percent in MEASURES})
        rows.append(shown)
    columns = ["method", "queries", "top-k Δ", "bottom-k Δ", "random Δ (mean, sd)", "top beats all random",
               "bottom below all random", "chance", "standardised effect (median)", "win rate vs random",
               "win rate per set-token"]
    return pd.DataFrame(rows, columns=columns)


def summary_export(summary: pd.DataFrame) -> pd.DataFrame:
    """The same table as numbers for the CSV: each measure's estimate, `low` and `high` in their own columns
    (shares as fractions), the queries (n), the random band's mean and sd and the chance share."""
    rows = []
    for _, row in summary.iterrows():
        exported = {"method": row["method"], "queries": int(row["n_queries"]),
                    "random Δ mean": _number(row, "random_delta_mean"), "random Δ sd": _number(row, "random_sd_mean"),
                    "chance": _number(row, "chance_beats_all")}
        for label, column, percent in MEASURES:
            low, high, _ = _bounds(row, column, percent)
            exported.update({label: _number(row, column), f"{label} low": low, f"{label} high": high})
        rows.append(exported)
    return pd.DataFrame(rows)


def settings_caption(run: Run, intervals: bool = True) -> str:
    settings = run.manifest.get("validation") or {}
    if not settings:
        return ""
    return (f"{settings.get('steps')} SGD step(s) at lr {settings.get('lr', float('nan')):.3g} on k = "
            f"{settings.get('k')} documents, {settings.get('random_draws')} random k-sets shared by all "
            f"{settings.get('n_queries')} queries, token-matched to the run's own top-k sets"
            + ("; intervals: 95%, crossed bootstrap over queries and random sets; shares marked exact: "
               "Clopper–Pearson." if intervals else "."))


def query_panel(run: Run, query_id: str) -> None:
    """Queries page: the chosen query's tail-patch deltas against its random band."""
    st.subheader("Counterfactual check")
    frame = validation_rows(run)
    if frame is None:
        st.caption(f"This run has no validation; {HOW_TO} trains on each query's top documents and measures "
                   "the change.")
        return
    if not (frame["query_id"] == query_id).any():
        st.caption("This query was not in the validated sample.")
        return
    widgets.chart(query_figure(frame, query_id), key="validation.query", name=f"validation_{query_id}")
    widgets.table(query_numbers(frame, query_id), key="validation.query_table", name=f"validation_{query_id}",
                  column_config={"Δ log p (nats)": st.column_config.NumberColumn(format="%.4g"),
                                 "standardised effect": st.column_config.NumberColumn(format="%.3g")})
    random = random_band(frame, query_id)
    band = (f"{len(random)} random k-sets: Δ from {random.min():.4g} to {random.max():.4g}, mean "
            f"{random.mean():.4g}" if len(random) else "no random k-sets")
    st.caption(f"Grey: the random k-sets (the chance band; {band}). ▲ top-k and ▼ bottom-k sets of each ranking "
               "method. One query has one draw of each set: no interval here (the overview's table has the "
               "run's, over queries and random sets). " + settings_caption(run, intervals=False))


def summary_table(run: Run, key: str) -> bool:
    summary = analysis_table(run.key, "validation_summary")
    if summary is None or summary.empty:
        st.caption(f"No validation in this run ({HOW_TO}).")
        return False
    widgets.table(summary_display(summary), key=key, name="validation_summary", export=summary_export(summary))
    st.caption(settings_caption(run))
    return True


def run_summary(run: Run) -> None:
    """Overview page: the run's validation table (one row per ranking method)."""
    st.subheader("Counterfactual validation")
    summary_table(run, "validation.summary")


def compare_summaries(run: Run, other: Run) -> None:
    """Compare page: both runs' validation tables side by side."""
    st.subheader("Counterfactual validation")
    left, right = st.columns(2)
    with left:
        st.caption(f"This run: {widgets.markdown_text(str(run.path))}")
        summary_table(run, "validation.compare_a")
    with right:
        st.caption(f"Second run: {widgets.markdown_text(str(other.path))}")
        summary_table(other, "validation.compare_b")
