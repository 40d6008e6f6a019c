"""The run's findings (analysis/findings.json) as readable sentences and a forest plot: each finding's effect with
its 95% interval against the no-effect line, differences and ratios in separate panels."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import charts, widgets

VERDICT_COLOURS = {"holds": "#2ca02c", "not supported": "#7f7f7f", "reversed": "#d62728"}
VERDICT_BADGES = {"holds": "green", "not supported": "gray", "reversed": "red"}
MARKDOWN_SPECIALS = "\\`*_[]{}()#+-!|~$<>"
RECORD_COLUMNS = ["name", "verdict", "effect", "ci_low", "ci_high", "null_value", "p_value", "p_value_method", "n",
                  "paper_direction", "effect_label", "claim"]


def plain_markdown(text: str) -> str:
    """Text shown literally by Streamlit markdown: markdown characters escaped, no HTML entities."""
    return "".join("\\" + char if char in MARKDOWN_SPECIALS else char for char in str(text))


def _number(value) -> float:
    return math.nan if value is None else float(value)


PANEL_TITLES = {"difference": "differences (no effect: 0)", "ratio": "ratios (no effect: 1, log scale)"}


def forest_plot(records: list[dict]) -> go.Figure:
    """Effect ± 95% interval per finding; one panel for differences (null 0), one for ratios (null 1, log x)."""
    panels = [(measure, [r for r in records if r.get("measure") == measure]) for measure in PANEL_TITLES]
    panels = [(measure, rows) for measure, rows in panels if rows]
    heights = [len(rows) for _, rows in panels] or [1]
    fig = make_subplots(rows=max(len(panels), 1), cols=1, row_heights=heights, vertical_spacing=0.12,
                        subplot_titles=[PANEL_TITLES[measure] for measure, _ in panels])
    in_legend = set()
    for row, (measure, rows) in enumerate(panels, start=1):
        for verdict, colour in VERDICT_COLOURS.items():
            chosen = [r for r in rows if r.get("verdict") == verdict]
            if not chosen:
                continue
            effect = [_number(r.get("effect")) for r in chosen]
            fig.add_trace(go.Scatter(
                x=effect, y=[r["name"] for r in chosen], mode="markers", name=verdict, legendgroup=verdict,
                showlegend=verdict not in in_legend, marker=dict(color=colour, size=9),
                error_x=dict(type="data", symmetric=False, color=colour, thickness=2,
                             array=[_number(r.get("ci_high")) - e for e, r in zip(effect, chosen)],
                             arrayminus=[e - _number(r.get("ci_low")) for e, r in zip(effect, chosen)]),
                customdata=[[r.get("effect_label", ""), r.get("n", "")] for r in chosen],
                hovertemplate="%{y}<br>%{customdata[0]}: %{x:.3g}<br>n = %{customdata[1]} queries<extra></extra>"),
                row=row, col=1)
            in_legend.add(verdict)
        fig.add_vline(x=0.0 if measure == "difference" else 1.0, line_dash="dot", line_color="grey", row=row, col=1)
        if measure == "ratio":
            fig.update_xaxes(type="log", row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    fig.update_layout(legend_title_text="verdict")
    return charts._layout(fig, "Findings: effect and 95% interval", height=140 + 34 * sum(heights))


def finding_sentences(records: list[dict]) -> list[str]:
    """One markdown line per finding: a verdict badge, then the record's sentence (escaped)."""
    lines = []
    for record in records:
        verdict = str(record.get("verdict", "not supported"))
        badge = f":{VERDICT_BADGES.get(verdict, 'gray')}-badge[{verdict}]"
        lines.append(f"- {badge} {plain_markdown(record.get('text', record.get('name', '')))}")
    return lines


def show_findings(run_key, findings: dict) -> None:
    """Render findings.json: sentences, forest plot (PNG/SVG/HTML export), records table (CSV export); exported
    files are named after the run directory. Older files without a `findings` list show their key/value pairs."""
    run_name = Path(str(run_key[0])).name if run_key else "run"
    records = [r for r in findings.get("findings") or [] if isinstance(r, dict)]
    if not records:
        rows = [(k, str(v)) for k, v in findings.items() if k not in ("notes", "findings")]
        widgets.table(pd.DataFrame(rows, columns=["finding", "value"]), key="findings.legacy",
                      name=f"findings_{run_name}")
        for note in findings.get("notes", []):
            st.markdown(f"- {plain_markdown(note)}")
        return
    st.caption(plain_markdown(
        f"Each finding: effect with a 95% bootstrap interval over queries (seed {findings.get('seed', '?')}, "
        f"{findings.get('n_resamples', '?')} resamples). \"holds\" only when the interval excludes no effect on "
        "the paper's side; each finding is a separate test (no multiple-comparison correction)."))
    st.markdown("\n".join(finding_sentences(records)))
    widgets.chart(forest_plot(records), key="findings.forest", name=f"findings_forest_{run_name}")
    with st.expander("Finding records"):
        frame = pd.DataFrame([{column: record.get(column) for column in RECORD_COLUMNS} for record in records])
        widgets.table(frame, key="findings.records", name=f"findings_{run_name}")
