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
RECORD_COLUMNS = ["name", "verdict", "adjusted_verdict", "primary", "primary_adjusted_verdict", "effect", "ci_low",
                  "ci_high", "null_value", "interval_p", "holm_p", "primary_holm_p", "p_value", "p_value_method", "n",
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
                customdata=[[r.get("effect_label", ""), r.get("n", ""), r.get("adjusted_verdict") or "—"]
                            for r in chosen],
                hovertemplate="%{y}<br>%{customdata[0]}: %{x:.3g}<br>n = %{customdata[1]} queries<br>after Holm: "
                              "%{customdata[2]}<extra></extra>"),
                row=row, col=1)
            in_legend.add(verdict)
        fig.add_vline(x=0.0 if measure == "difference" else 1.0, line_dash="dot", line_color="grey", row=row, col=1)
        if measure == "ratio":
            fig.update_xaxes(type="log", row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    fig.update_layout(legend_title_text="verdict")
    return charts._layout(fig, "Findings: effect and 95% interval", height=140 + 34 * sum(heights))


def _badge(verdict, prefix: str = "") -> str:
    verdict = str(verdict or "not supported")
    return f":{VERDICT_BADGES.get(verdict, 'gray')}-badge[{prefix}{verdict}]"


def finding_sentences(records: list[dict]) -> list[str]:
    """One markdown line per finding: the verdict badge, the verdict after Holm (and among the headline claims,
    for those) when the record has them, then the record's sentence (escaped)."""
    lines = []
    for record in records:
        badges = [_badge(record.get("verdict"))]
        if record.get("adjusted_verdict") is not None:
            badges.append(_badge(record["adjusted_verdict"], "after Holm: "))
        if record.get("primary"):
            badges.append(_badge(record.get("primary_adjusted_verdict"), "headline claim, after Holm: "))
        lines.append(f"- {' '.join(badges)} {plain_markdown(record.get('text', record.get('name', '')))}")
    return lines


def survivors_line(records: list[dict]) -> str:
    """Which findings keep their verdict after Holm's adjustment (over the run, and among the headline claims)."""
    kept = [r["name"] for r in records if r.get("adjusted_verdict") not in (None, "not supported")]
    headline = [r["name"] for r in records if r.get("primary")]
    headline_kept = [r["name"] for r in records if r.get("primary_adjusted_verdict") not in (None, "not supported")]
    family = next((r.get("family_size") for r in records if r.get("family_size") is not None), len(records))
    return (f"After Holm over the run's {family} findings, {len(kept)} keep their verdict"
            + (f": {', '.join(kept)}" if kept else "") + f". Headline claims ({', '.join(headline) or 'none'}): "
            + (f"{len(headline_kept)} of {len(headline)} keep theirs" + (f" ({', '.join(headline_kept)})"
                                                                         if headline_kept else "") + "."))


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
    adjusted = any(r.get("adjusted_verdict") is not None for r in records)
    st.caption(plain_markdown(
        f"Each finding: effect with a 95% bootstrap interval over queries (seed {findings.get('seed', '?')}, "
        f"{findings.get('n_resamples', '?')} resamples). \"holds\" only when the interval excludes no effect on "
        "the paper's side. " + ("The first badge is each finding on its own; the second keeps it only if it "
                                f"survives {findings.get('multiplicity', 'a family-wise adjustment')}."
                                if adjusted else "Each finding is a separate test (no multiple-comparison "
                                                 "correction in this file).")))
    if adjusted:
        st.markdown(plain_markdown(survivors_line(records)))
    st.markdown("\n".join(finding_sentences(records)))
    widgets.chart(forest_plot(records), key="findings.forest", name=f"findings_forest_{run_name}")
    with st.expander("Finding records"):
        frame = pd.DataFrame([{column: record.get(column) for column in RECORD_COLUMNS} for record in records])
        widgets.table(frame, key="findings.records", name=f"findings_{run_name}")
