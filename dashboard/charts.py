"""Pure figure builders: DataFrames / arrays in, plotly Figures out. No Streamlit here."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go

POSITIVE = "#d62728"  # red: training on the document makes the completion more likely
NEGATIVE = "#14a39a"  # teal
DIVERGING = [[0.0, NEGATIVE], [0.5, "#f7f7f7"], [1.0, POSITIVE]]
TEMPLATE = "plotly_white"

# one colour per task on every chart, page and run: the paper's and the demo's tasks by name, any other task by a
# hash of its name into OTHER_TASK_COLOURS (controls in a lighter shade of what they control)
TASK_COLOURS = {"factual": "#4c78a8", "factual_control": "#9ecae9", "arithmetic": "#e45756", "slope": "#54a24b",
                "slopes": "#54a24b", "linear_equation": "#f58518", "reasoning_control": "#b279a2"}
OTHER_TASK_COLOURS = ["#72b7b2", "#9d755d", "#eeca3b", "#ff9da6", "#bab0ac", "#439894", "#d67195", "#8f6d31"]


def task_colour(task: str) -> str:
    """The colour of a task on every chart (stable across pages, runs and charts)."""
    task = str(task)
    return TASK_COLOURS.get(task) or OTHER_TASK_COLOURS[zlib.crc32(task.encode("utf-8")) % len(OTHER_TASK_COLOURS)]


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, height=height, margin=dict(l=60, r=20, t=50, b=50))
    return fig


LOG_TICK_MANTISSAS = ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))


def log_ticks(low: float, high: float, suffix: str = "×") -> tuple[list[float], list[str]]:
    """Tick values for a log axis from `low` to `high` (1 always inside) with full labels ('0.5×', '1×', '2×';
    never plotly's bare minor digits '2 3 4 … 9'): the coarsest of LOG_TICK_MANTISSAS that gives at least 4 ticks
    (the finest otherwise)."""
    low, high = min(low, 1.0), max(high, 1.0)
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    for mantissas in LOG_TICK_MANTISSAS:
        values = sorted({round(m * 10.0 ** e, 10) for e in decades for m in mantissas if low <= m * 10.0 ** e <= high})
        if len(values) >= 4:
            break
    return values, [f"{value:g}{suffix}" for value in values]


def count_bars(counts: pd.Series, title: str, x_title: str, by_task: bool = False) -> go.Figure:
    """Bars of counts by category (e.g. documents per source, queries per task: `by_task` gives task colours)."""
    colours = [task_colour(i) for i in counts.index] if by_task else "#4c78a8"
    fig = go.Figure(go.Bar(x=[str(i) for i in counts.index], y=counts.to_numpy(), marker_color=colours))
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


_HEATMAP_MARGIN = dict(l=60, r=20, t=50, b=90)


def short_labels(query_ids: list[str], tasks: list[str]) -> list[str]:
    """Axis labels without the task prefix the block label already gives ("slope-03" in block slope -> "03")."""
    short = []
    for query_id, task in zip(query_ids, tasks):
        trimmed = query_id[len(task):].lstrip("-_ ") if query_id.startswith(task) else query_id
        short.append(trimmed or query_id)
    return short


def _axis_labels(query_ids: list[str], tasks: list[str]) -> tuple[dict, int]:
    """(tick settings, figure height) of a query × query heatmap: a square of at most 760 px (it fits the page
    width); every query labelled (task prefix dropped) while rows are at least 8 px tall, else every 2nd / 5th."""
    n = len(query_ids)
    side = int(min(760, max(420, 12 * n)))
    step = next((s for s in (1, 2, 5, 10) if side / n * s >= 8), None)
    if step is None:
        return dict(showticklabels=False), side + 140
    labels = short_labels(query_ids, tasks)
    return dict(tickmode="array", tickvals=list(range(0, n, step)), ticktext=labels[::step],
                tickfont=dict(size=9 if side / n * step >= 11 else 7)), side + 140


HEATMAP_META = "ie-correlation-heatmap"  # layout.meta: how the click listener (dashboard/cell_clicks.py) finds it


def correlation_heatmap(matrix: np.ndarray, query_ids: list[str], tasks: list[str],
                        chosen: tuple[str, str] | None = None, n_documents: int | None = None) -> go.Figure:
    """Query × query Pearson matrix as a heatmap (one image: fast to draw), lower triangle only (the matrix is
    symmetric); x and y are the query ids, so a click or hover names the pair. Task blocks are outlined and named
    in the empty upper triangle; the `chosen` pair is ringed (shapes named "chosen")."""
    n = len(query_ids)
    lower = np.where(np.tril(np.ones((n, n), dtype=bool)), matrix, np.nan)
    over = f" over {n_documents:,} documents" if n_documents else ""
    fig = go.Figure(go.Heatmap(
        z=lower, x=list(query_ids), y=list(query_ids), colorscale=DIVERGING, zmin=-1, zmax=1, hoverongaps=False,
        colorbar=dict(title="Pearson r", thickness=14), xgap=0.5, ygap=0.5,
        hovertemplate="%{y} × %{x}<br>r = %{z:.3f}" + over + "<extra></extra>"))
    ticks, height = _axis_labels(query_ids, tasks)
    if "tickvals" in ticks:
        ticks["tickvals"] = [query_ids[i] for i in ticks["tickvals"]]
    axis = dict(type="category", showgrid=False, zeroline=False, **ticks)
    fig.update_layout(xaxis={**axis, "tickangle": -90, "constrain": "domain"},
                      yaxis={**axis, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
                      showlegend=False, meta=HEATMAP_META)
    for start, stop, task in task_blocks(tasks):
        fig.add_shape(type="rect", x0=start - 0.5, x1=stop - 0.5, y0=start - 0.5, y1=stop - 0.5,
                      line=dict(color="#333", width=1.5), fillcolor="rgba(0,0,0,0)")
        if stop < n:  # right of the block, in the empty upper triangle
            fig.add_annotation(x=stop - 0.5, y=(start + stop - 1) / 2, text=f"<b>{task}</b>", showarrow=False,
                               xanchor="left", xshift=6, font=dict(size=13))
        else:  # the last block reaches the right edge: inside its own empty upper-right corner (above it, the
            # label met the previous block's, drawn beside that block's middle)
            fig.add_annotation(x=stop - 0.5, y=start - 0.5, text=f"<b>{task}</b>", showarrow=False,
                               xanchor="right", yanchor="top", xshift=-4, yshift=-4, font=dict(size=13))
    if chosen is not None and chosen[0] in query_ids and chosen[1] in query_ids:
        row, col = sorted((query_ids.index(chosen[0]), query_ids.index(chosen[1])), reverse=True)
        for pad, colour in ((0.9, "#fff"), (0.75, "#111")):  # black ring inside a white one: visible on any cell
            fig.add_shape(type="rect", x0=col - pad, x1=col + pad, y0=row - pad, y1=row + pad, layer="above",
                          line=dict(color=colour, width=2.5), name="chosen")
    fig = _layout(fig, "Query × query correlation of scores over documents (grouped by task)", height=height)
    fig.update_layout(margin=_HEATMAP_MARGIN)
    return fig


def task_blocks(tasks: list[str]):
    """(start, stop, task) of each run of equal tasks."""
    start = 0
    for i in range(1, len(tasks) + 1):
        if i == len(tasks) or tasks[i] != tasks[start]:
            yield start, i, tasks[start]
            start = i


def task_matrix(table: pd.DataFrame, value: str = "mean_pearson") -> go.Figure:
    """Task × task mean correlation as a heatmap with the value (and its interval when the table has one)."""
    tasks = sorted(set(table["task_a"]) | set(table["task_b"]))
    position = {task: i for i, task in enumerate(tasks)}
    values = np.full((len(tasks), len(tasks)), np.nan)
    text = np.full((len(tasks), len(tasks)), "", dtype=object)
    has_interval = {"ci_low", "ci_high"} <= set(table.columns)
    for record in table.to_dict("records"):
        i, j = position[record["task_a"]], position[record["task_b"]]
        label = f"{record[value]:.3f}" if np.isfinite(record[value]) else "—"
        if has_interval:
            label += f"<br>[{record['ci_low']:.3f}, {record['ci_high']:.3f}]"
        for a, b in ((i, j), (j, i)):
            values[a, b], text[a, b] = record[value], label
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig = go.Figure(go.Heatmap(z=values, x=tasks, y=tasks, text=text, texttemplate="%{text}",
                               colorscale=DIVERGING, zmin=-bound, zmax=bound, colorbar=dict(title="mean r"),
                               hovertemplate="%{y} × %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    note = " (95% interval)" if has_interval else ""
    return _layout(fig, f"Mean correlation of query pairs, by task pair{note}", height=120 + 60 * len(tasks))


def score_scatter(x: np.ndarray, y: np.ndarray, x_label: str, y_label: str, doc_ids: np.ndarray,
                  title: str) -> go.Figure:
    """Two queries' scores over (a sample of) documents; customdata holds document ids."""
    fig = go.Figure(go.Scattergl(x=x, y=y, mode="markers", marker=dict(size=4, opacity=0.5, color="#4c78a8"),
                                 customdata=doc_ids, hovertemplate="%{customdata}<br>%{x:.3g}, %{y:.3g}<extra></extra>"))
    fig.update_layout(xaxis_title=x_label, yaxis_title=y_label)
    return _layout(fig, title, height=480)


def from_one_document(table: pd.DataFrame, n_documents: int | None) -> pd.DataFrame:
    """The rows at percentiles of at least one document (below, the top p% is still one document)."""
    return table if not n_documents else table[table["percentile"] >= 100.0 / n_documents * (1 - 1e-9)]


def magnitude_curves(table: pd.DataFrame, value: str, title: str, log_y: bool, y_title: str,
                     n_documents: int | None = None, band: tuple[str, str] | None = None) -> go.Figure:
    """Cumulative influence of the top p% documents, one line per task (table: task, percentile, `value`), from
    the percentile of one document up (below it the curve is flat by construction); log x axis, powers of 10.
    With `band` (two columns: interval ends), each line gets its interval as a shaded area."""
    table = from_one_document(table, n_documents)
    fig = go.Figure()
    for task, part in table.sort_values("percentile").groupby("task", sort=True):
        colour = task_colour(task)
        if band is not None and part[list(band)].notna().any().all():
            outline = np.concatenate([part["percentile"], part["percentile"][::-1]])
            fig.add_trace(go.Scatter(x=outline, y=np.concatenate([part[band[1]], part[band[0]][::-1]]),
                                     fill="toself", mode="none", fillcolor=colour, opacity=0.15, hoverinfo="skip",
                                     legendgroup=str(task), showlegend=False))
        fig.add_trace(go.Scatter(x=part["percentile"], y=part[value], mode="lines+markers", name=str(task),
                                 legendgroup=str(task), marker=dict(size=4, color=colour), line=dict(color=colour),
                                 hovertemplate=f"{task}<br>top %{{x:.3g}}% of documents: %{{y:.3g}}<extra></extra>"))
    fig.update_xaxes(type="log", dtick=1, tickformat="~g", ticksuffix="%", title="top p% of documents by score")
    fig.update_yaxes(type="log" if log_y else "linear", title=y_title, dtick=1 if log_y else None,
                     tickformat=",~r" if log_y else None)  # 1,000,000 and 0.001, not 1e+6
    return _layout(fig, title)


def information_scatter(table: pd.DataFrame, title: str) -> go.Figure:
    """ln top influence against ln nats, one point per query coloured by task (table: query_id, task, log_nats,
    log_top_influence, fitted, in_fit), with each task's fitted line (the information-adjusted fit) where given."""
    fig = go.Figure()
    shown = table[table["log_nats"].notna() & table["log_top_influence"].notna()]
    for task, part in shown.groupby("task", sort=True):
        colour = task_colour(task)
        fig.add_trace(go.Scatter(x=part["log_nats"], y=part["log_top_influence"], mode="markers", name=str(task),
                                 legendgroup=str(task), marker=dict(size=7, color=colour, opacity=0.8),
                                 customdata=part["query_id"],
                                 hovertemplate="%{customdata}<br>ln nats %{x:.3g}<br>ln influence %{y:.3g}"
                                               "<extra></extra>"))
        fitted = part[part["in_fit"].astype(bool)].sort_values("log_nats")
        if len(fitted):
            fig.add_trace(go.Scatter(x=fitted["log_nats"], y=fitted["fitted"], mode="lines", legendgroup=str(task),
                                     showlegend=False, line=dict(color=colour, dash="dot"), hoverinfo="skip"))
    fig.update_layout(xaxis_title="ln nats of the completion", yaxis_title="ln influence of the top 1% positive "
                                                                           "documents")
    return _layout(fig, title, height=460)


def slope_boxes(power_law: pd.DataFrame) -> go.Figure:
    """Power-law slopes (log score vs log rank) per task, one point per query."""
    fig = go.Figure()
    for task, part in power_law.groupby("task", sort=True):
        fig.add_trace(go.Box(y=part["slope"], name=str(task), boxpoints="all", jitter=0.4, pointpos=0,
                             marker_color=task_colour(task),
                             customdata=part["query_id"], hovertemplate="%{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_layout(showlegend=False, yaxis_title="slope")
    return _layout(fig, "Power-law slopes of the top positive scores")


def source_small_multiples(table: pd.DataFrame, title: str, columns: int = 3) -> go.Figure:
    """One panel per task: each source's share among the top k ÷ its corpus share, one bar per k (with its 95%
    interval when the table has `ci_low`, `ci_high`), and the range expected for k random documents (grey; table
    columns `chance_low`, `chance_high`).

    customdata per bar: (task, source, k). The traces are plain dicts assembled without per-trace validation
    (plotly's validation took over a second for the ~60 traces)."""
    tasks = sorted(table["task"].astype(str).unique())
    rows = max(1, -(-len(tasks) // columns))
    ks = sorted(int(k) for k in table["k"].unique())
    palette = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#e45756"]
    traces, ones = [], []
    for index, task in enumerate(tasks):
        axis = "" if index == 0 else str(index + 1)
        part = table[table["task"].astype(str) == task].sort_values("source")
        for number, k in enumerate(ks):
            bars = part[part["k"] == k]
            sources = bars["source"].astype(str).tolist()
            interval = {}
            if {"ci_low", "ci_high"} <= set(bars.columns):  # the bootstrap interval of the multiplier
                interval = dict(error_y=dict(type="data", array=(bars["ci_high"] - bars["multiplier"]).tolist(),
                                             arrayminus=(bars["multiplier"] - bars["ci_low"]).tolist(),
                                             color="#222", thickness=1, width=2))
            traces.append(dict(**interval,
                type="bar", x=sources, y=bars["multiplier"].tolist(), name=f"k = {k:,}", legendgroup=f"k{k}",
                offsetgroup=f"k{k}", showlegend=index == 0, marker=dict(color=palette[number % len(palette)]),
                customdata=[[task, source, str(k)] for source in sources], xaxis=f"x{axis}", yaxis=f"y{axis}",
                hovertemplate="%{customdata[0]} · %{customdata[1]} · k=%{customdata[2]}: ×%{y:.2f}<extra></extra>"))
            if {"chance_low", "chance_high"} <= set(bars.columns):
                middle = ((bars["chance_low"] + bars["chance_high"]) / 2).tolist()
                traces.append(dict(
                    type="scatter", x=sources, y=middle, mode="markers", legendgroup="chance", offsetgroup=f"k{k}",
                    name="95% range, k random documents", showlegend=index == 0 and number == 0,
                    marker=dict(size=1, color="rgba(0,0,0,0)"), hoverinfo="skip", xaxis=f"x{axis}",
                    yaxis=f"y{axis}", error_y=dict(type="data", array=(bars["chance_high"] - middle).tolist(),
                                                   color="rgba(40,40,40,0.35)", thickness=5, width=0)))
        ones.append(dict(type="line", xref=f"x{axis} domain", yref=f"y{axis}", x0=0, x1=1, y0=1, y1=1,
                         line=dict(color="grey", dash="dot", width=1)))
    layout = panel_grid(tasks, rows, columns, gap_y=0.24 if rows > 1 else 0.12)
    for name in [key for key in layout if key.startswith("xaxis")]:
        layout[name].update(tickangle=-30, tickfont=dict(size=10))
    layout.update(template=TEMPLATE, title=dict(text=title), height=360 * rows + 160, barmode="group",
                  scattermode="group", legend=dict(orientation="h", y=-0.16 / rows, yanchor="top"),
                  shapes=ones, margin=dict(l=60, r=20, t=90, b=110))
    layout["yaxis"]["title"] = dict(text="share ÷ corpus share")
    return go.Figure(data=traces, layout=layout, _validate=False)


def panel_grid(titles: list[str], rows: int, columns: int, gap_x: float = 0.04, gap_y: float = 0.12) -> dict:
    """Layout of a grid of panels (axes x, x2, …; y axes shared, labelled in the first column) with titles."""
    width, height = (1 - gap_x * (columns - 1)) / columns, (1 - gap_y * (rows - 1)) / rows
    layout: dict = {"annotations": []}
    for index, title in enumerate(titles):
        row, col = divmod(index, columns)
        x0, y1 = col * (width + gap_x), 1 - row * (height + gap_y)
        x1, y0 = min(1.0, x0 + width), max(0.0, y1 - height)  # no float error outside [0, 1]
        axis = "" if index == 0 else str(index + 1)
        layout[f"xaxis{axis}"] = dict(domain=[x0, x1], anchor=f"y{axis}")
        layout[f"yaxis{axis}"] = dict(domain=[y0, y1], anchor=f"x{axis}", showticklabels=col == 0,
                                      **({"matches": "y"} if index else {}))
        layout["annotations"].append(dict(text=title, x=(x0 + x1) / 2, y=y1, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=14)))
    return layout


def answer_rates(table: pd.DataFrame, title: str) -> go.Figure:
    """Rate at which answers / steps occur in the top k, per task (table: task, k, target_kind, rate)."""
    fig = go.Figure()
    for (kind, k), part in table.groupby(["target_kind", "k"], sort=True):
        fig.add_trace(go.Bar(x=part["task"], y=part["rate"], name=f"{kind}, k = {k}"))
    fig.update_layout(barmode="group", xaxis_title="task", yaxis_title="fraction found", yaxis_range=[0, 1])
    return _layout(fig, title)


def enrichment_bars(table: pd.DataFrame, title: str, log_y: bool = False) -> go.Figure:
    """Observed ÷ expected matches per task, one bar per target kind, with 95% whiskers and a ×1 line
    (table: task, target_kind, enrichment, ci_low, ci_high); `log_y`: a log y axis labelled 0.5×, 1×, 2×, ..."""
    fig = go.Figure()
    for kind, part in table.groupby("target_kind", sort=True):
        part = part.sort_values("task")
        fig.add_trace(go.Bar(x=part["task"], y=part["enrichment"], name=str(kind),
                             error_y=dict(type="data", array=part["ci_high"] - part["enrichment"],
                                          arrayminus=part["enrichment"] - part["ci_low"], thickness=1),
                             hovertemplate="%{x}: ×%{y:.2f}<extra>" + str(kind) + "</extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(barmode="group", xaxis_title="task", yaxis_title="observed ÷ expected by chance")
    if log_y:
        ends = table[["enrichment", "ci_low", "ci_high"]].to_numpy(dtype=np.float64).ravel()
        ends = ends[np.isfinite(ends) & (ends > 0)]
        low, high = (ends.min() / 1.2, ends.max() * 1.2) if len(ends) else (0.5, 2.0)
        values, labels = log_ticks(low, high)
        fig.update_yaxes(type="log", range=[math.log10(min(low, 1.0)), math.log10(max(high, 1.0))],
                         tickmode="array", tickvals=values, ticktext=labels)
    return _layout(fig, title)


def document_profile(table: pd.DataFrame, title: str, axis_title: str = "score") -> go.Figure:
    """One document's value for every query, grouped by task (table: query_id, task, score)."""
    fig = go.Figure()
    for task, part in table.groupby("task", sort=True):
        fig.add_trace(go.Box(y=part["score"], name=str(task), boxpoints="all", jitter=0.4, pointpos=0,
                             marker_color=task_colour(task),
                             customdata=part["query_id"], hovertemplate="%{customdata}: %{y:.3g}<extra></extra>"))
    if "percentile" not in axis_title:
        fig.add_hline(y=0.0, line_color="grey", line_dash="dot")
    fig.update_layout(showlegend=False, yaxis_title=axis_title)
    return _layout(fig, title)


def histogram(values: np.ndarray, title: str, x_title: str) -> go.Figure:
    fig = go.Figure(go.Histogram(x=values, nbinsx=40, marker_color="#4c78a8"))
    fig.update_layout(xaxis_title=x_title, yaxis_title="queries")
    return _layout(fig, title, height=340)
