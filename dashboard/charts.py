"""Pure figure builders: DataFrames / arrays in, plotly Figures out. No Streamlit here."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

POSITIVE = "#d62728"  # red: training on the document makes the completion more likely
NEGATIVE = "#14a39a"  # teal
DIVERGING = [[0.0, NEGATIVE], [0.5, "#f7f7f7"], [1.0, POSITIVE]]
TEMPLATE = "plotly_white"


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, height=height, margin=dict(l=60, r=20, t=50, b=50))
    return fig


def count_bars(counts: pd.Series, title: str, x_title: str) -> go.Figure:
    """Bars of counts by category (e.g. documents per source, queries per task)."""
    fig = go.Figure(go.Bar(x=[str(i) for i in counts.index], y=counts.to_numpy(), marker_color="#4c78a8"))
    fig.update_layout(xaxis_title=x_title, yaxis_title="count")
    return _layout(fig, title, height=320)


def layer_split(layers: list[str], positive: np.ndarray, negative: np.ndarray, title: str) -> go.Figure:
    """Per-layer sums of one query's positive and negative influence over all documents."""
    short = [name.replace("model.layers.", "L").replace(".mlp", "") for name in layers]
    fig = go.Figure([
        go.Bar(name="positive", x=short, y=positive, marker_color=POSITIVE, hovertext=layers),
        go.Bar(name="negative", x=short, y=negative, marker_color=NEGATIVE, hovertext=layers),
    ])
    fig.update_layout(barmode="relative", xaxis_title="layer", yaxis_title="summed influence")
    return _layout(fig, title, height=360)


def correlation_heatmap(matrix: np.ndarray, query_ids: list[str], tasks: list[str]) -> go.Figure:
    """Query × query Pearson matrix drawn as square markers (selectable in Streamlit, unlike go.Heatmap).

    The matrix is symmetric, so only the lower triangle is drawn (half the markers for the browser to render):
    marker k is cell `heatmap_cell(k)` at x = column, y = row; hovertext names both queries."""
    n = len(query_ids)
    rows, cols = np.tril_indices(n)
    ids = np.array(query_ids, dtype=object)
    size = max(3.0, min(22.0, 600.0 / max(n, 1)))
    fig = go.Figure(go.Scattergl(
        x=cols, y=rows, mode="markers", hovertext=ids[rows] + " × " + ids[cols],
        marker=dict(symbol="square", size=size, color=matrix[rows, cols], colorscale=DIVERGING, cmin=-1, cmax=1,
                    colorbar=dict(title="Pearson")),
        hovertemplate="%{hovertext}<br>r = %{marker.color:.3f}<extra></extra>",
        selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.8)),
    ))
    ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=list(query_ids)) if n <= 60 else dict(
        showticklabels=False)
    axis = dict(range=[-0.5, n - 0.5], showgrid=False, zeroline=False, **ticks)
    fig.update_layout(xaxis=axis, yaxis={**axis, "range": [n - 0.5, -0.5]})
    for centre, task in _task_blocks(tasks):
        fig.add_annotation(x=centre, y=centre, text=task, showarrow=False, xanchor="left", yanchor="bottom",
                           xshift=8, font=dict(size=10))
    return _layout(fig, "Query × query correlation of scores over documents (grouped by task)", height=720)


def heatmap_cell(point_index: int, query_ids: list[str]) -> tuple[str, str]:
    """The (row, column) query ids of marker `point_index` in `correlation_heatmap`."""
    rows, cols = np.tril_indices(len(query_ids))
    return query_ids[rows[point_index]], query_ids[cols[point_index]]


def _task_blocks(tasks: list[str]):
    """(centre position, task) of each run of equal tasks, for labels above the heatmap."""
    start = 0
    for i in range(1, len(tasks) + 1):
        if i == len(tasks) or tasks[i] != tasks[start]:
            yield (start + i - 1) / 2, tasks[start]
            start = i


def score_scatter(x: np.ndarray, y: np.ndarray, x_label: str, y_label: str, doc_ids: np.ndarray,
                  title: str) -> go.Figure:
    """Two queries' scores over (a sample of) documents; customdata holds document ids."""
    fig = go.Figure(go.Scattergl(x=x, y=y, mode="markers", marker=dict(size=4, opacity=0.5, color="#4c78a8"),
                                 customdata=doc_ids, hovertemplate="%{customdata}<br>%{x:.3g}, %{y:.3g}<extra></extra>"))
    fig.update_layout(xaxis_title=x_label, yaxis_title=y_label)
    return _layout(fig, title, height=480)


def magnitude_curves(table: pd.DataFrame, value: str, title: str, log_y: bool) -> go.Figure:
    """Cumulative influence of the top p% documents, one line per task (table: task, percentile, `value`)."""
    fig = go.Figure()
    for task, part in table.sort_values("percentile").groupby("task", sort=True):
        fig.add_trace(go.Scatter(x=part["percentile"], y=part[value], mode="lines+markers", name=str(task),
                                 marker=dict(size=4)))
    fig.update_xaxes(type="log", title="top percentile of documents (%)")
    fig.update_yaxes(type="log" if log_y else "linear", title=value.replace("_", " "))
    return _layout(fig, title)


def slope_boxes(power_law: pd.DataFrame) -> go.Figure:
    """Power-law slopes (log score vs log rank) per task, one point per query."""
    fig = go.Figure()
    for task, part in power_law.groupby("task", sort=True):
        fig.add_trace(go.Box(y=part["slope"], name=str(task), boxpoints="all", jitter=0.4, pointpos=0,
                             customdata=part["query_id"], hovertemplate="%{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_layout(showlegend=False, yaxis_title="slope")
    return _layout(fig, "Power-law slopes of the top positive scores")


def source_multipliers(table: pd.DataFrame, title: str) -> go.Figure:
    """Multiplier of each source's share among the top k vs its base share; one bar group per k.

    customdata per bar: (source, k)."""
    fig = go.Figure()
    for k, part in table.sort_values("source").groupby("k", sort=True):
        fig.add_trace(go.Bar(x=part["source"], y=part["multiplier"], name=f"k = {k:,}",
                             customdata=np.stack([part["source"].astype(str), part["k"].astype(str)], 1),
                             hovertemplate="%{customdata[0]}, k=%{customdata[1]}: ×%{y:.2f}<extra></extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(barmode="group", xaxis_title="source", yaxis_title="share / base share")
    return _layout(fig, title)


def answer_rates(table: pd.DataFrame, title: str) -> go.Figure:
    """Rate at which answers / steps occur in the top k, per task (table: task, k, target_kind, rate)."""
    fig = go.Figure()
    for (kind, k), part in table.groupby(["target_kind", "k"], sort=True):
        fig.add_trace(go.Bar(x=part["task"], y=part["rate"], name=f"{kind}, k = {k}"))
    fig.update_layout(barmode="group", xaxis_title="task", yaxis_title="fraction found", yaxis_range=[0, 1])
    return _layout(fig, title)


def document_profile(table: pd.DataFrame, title: str) -> go.Figure:
    """One document's score for every query, grouped by task (table: query_id, task, score)."""
    fig = go.Figure()
    for task, part in table.groupby("task", sort=True):
        fig.add_trace(go.Box(y=part["score"], name=str(task), boxpoints="all", jitter=0.4, pointpos=0,
                             customdata=part["query_id"], hovertemplate="%{customdata}: %{y:.3g}<extra></extra>"))
    fig.add_hline(y=0.0, line_color="grey", line_dash="dot")
    fig.update_layout(showlegend=False, yaxis_title="score")
    return _layout(fig, title)


def histogram(values: np.ndarray, title: str, x_title: str) -> go.Figure:
    fig = go.Figure(go.Histogram(x=values, nbinsx=40, marker_color="#4c78a8"))
    fig.update_layout(xaxis_title=x_title, yaxis_title="queries")
    return _layout(fig, title, height=340)
