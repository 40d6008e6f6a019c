"""Pure figure builders for distinctive terms (no Streamlit): a ranked bar chart of z-scores, clickable."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import NEGATIVE, POSITIVE, TEMPLATE

TERMS_META = "ie-distinctive-terms"


def term_bars(frame: pd.DataFrame, title: str, colour: str = POSITIVE, chosen: str | None = None) -> go.Figure:
    """Horizontal bars of the terms' z-scores, the most distinctive on top; customdata per bar: the term. The
    chosen term's bar is outlined."""
    frame = frame.iloc[::-1]
    terms = frame["term"].astype(str).tolist()
    colours = [colour if z >= 0 else (NEGATIVE if colour == POSITIVE else POSITIVE) for z in frame["z"]]
    outline = [2.5 if term == chosen else 0 for term in terms]
    fig = go.Figure(go.Bar(
        x=frame["z"].tolist(), y=terms, orientation="h", marker=dict(color=colours, line=dict(color="#222",
                                                                                          width=outline)),
        customdata=[[term, int(a), int(b)] for term, a, b in zip(terms, frame["count_a"], frame["count_b"])],
        hovertemplate="%{customdata[0]}: z = %{x:.2f}<br>%{customdata[1]} here, %{customdata[2]} in the "
                      "comparison set<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title, height=max(260, 22 * len(terms) + 90), meta=TERMS_META,
                      margin=dict(l=160, r=20, t=50, b=40), xaxis_title="z (log-odds ratio ÷ its s.d.)",
                      yaxis=dict(type="category", automargin=True))
    return fig
