"""The run's findings (analysis/findings.json) as a compact table (claim, task, effect [95% CI], verdict, verdict
after Holm), a forest plot with one panel per unit (each effect with its 95% interval against the no-effect line),
and the records' sentences. Plain functions of the records (findings_table, forest_plot) for any page or report."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import charts, widgets
from precompute.analysis.statistics import interval_note, number_text

VERDICT_COLOURS = {"holds": "#2ca02c", "not supported": "#7f7f7f", "reversed": "#d62728"}
VERDICT_BADGES = {"holds": "green", "not supported": "gray", "reversed": "red"}
MARKDOWN_SPECIALS = "\\`*_[]{}()#+-!|~$<>"
TABLE_ROW_PX = 35  # Streamlit's dataframe row height
RECORD_COLUMNS = ["name", "verdict", "adjusted_verdict", "primary", "primary_adjusted_verdict", "effect", "ci_low",
                  "ci_high", "null_value", "interval_p", "holm_p", "primary_holm_p", "p_value", "p_value_method", "n",
                  "paper_direction", "effect_label", "claim"]


def plain_markdown(text: str) -> str:
    """Text shown literally by Streamlit markdown: markdown characters escaped, no HTML entities."""
    return "".join("\\" + char if char in MARKDOWN_SPECIALS else char for char in str(text))


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _words(text: str) -> str:
    return str(text).replace("_", " ")


def claim_and_scope(name: str) -> tuple[str, str]:
    """A finding's short claim and what it covers ("pooled", a task, or a validation method), from its name:
    correlation.reasoning_vs_factual.slope -> ("correlation: reasoning vs factual", "slope"),
    validation.ekfac.standardised_effect -> ("validation: standardised effect", "ekfac")."""
    parts = str(name).split(".")
    if parts[0] == "validation" and len(parts) == 3:
        return f"validation: {_words(parts[2])}", parts[1]
    if parts[0] == "ground_truth" and len(parts) >= 2:
        claim = "ground truth: specificity" if parts[-1] == "specificity" else "ground truth: procedure share"
        return claim, parts[1]
    if len(parts) >= 2:
        return f"{_words(parts[0])}: {_words(parts[1])}", ".".join(parts[2:]) or "pooled"
    return _words(name), "pooled"


def finding_label(record: dict) -> str:
    """The label a finding carries in the table and on the forest plot: claim · scope."""
    claim, scope = claim_and_scope(record.get("name", ""))
    return f"{claim} · {scope}"


# one forest-plot panel per unit, in this order; each effect sits on an axis of its own unit and scale
UNIT_TITLES = {
    "Δ mean r": "correlation: difference in mean Pearson r (no effect: 0)",
    "Δ scaled enrichment": "answer occurrence: difference in range-scaled enrichment (no effect: 0)",
    "ratio": "ratios (no effect: 1×, log scale)",
    "share − chance": "validation: share of queries beating every random set, minus chance (no effect: 0)",
    "standardised effect": "validation: standardised effect, in sd of the random sets (no effect: 0)",
}
FAMILY_UNITS = {"correlation": "Δ mean r", "occurrence": "Δ scaled enrichment", "validation": "share − chance"}


def effect_unit(record: dict) -> str:
    """The unit of a finding's effect, which is its forest-plot panel: ratios together (log axis), each kind of
    difference apart (a standardised effect of 30 never shares an axis with a Δr of 0.03)."""
    name = str(record.get("name", ""))
    if record.get("measure") == "ratio":
        return "ratio"
    if name.endswith("standardised_effect"):
        return "standardised effect"
    family = name.split(".")[0]
    return FAMILY_UNITS.get(family, f"{_words(family)} difference")


def effect_text(record: dict) -> str:
    """'0.0352 [-0.0222, 0.0971]', ratios with ×: '4.27× [3.47, 5.28]'; a degenerate interval says so."""
    effect, low, high = (_number(record.get(key)) for key in ("effect", "ci_low", "ci_high"))
    unit = "×" if record.get("measure") == "ratio" else ""
    text = f"{number_text(effect)}{unit} [{number_text(low)}, {number_text(high)}]"
    return text + interval_note(low, high)


def findings_table(records: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(shown, exported): the compact findings table (finding, task or method, unit, effect [95% CI], n, verdict,
    verdict after Holm, headline claim) and the same rows with numbers in their own columns for the CSV."""
    shown, exported = [], []
    for record in records:
        claim, scope = claim_and_scope(record.get("name", ""))
        common = {"claim": claim, "task or method": scope, "unit": effect_unit(record)}
        shown.append({**common, "effect [95% CI]": effect_text(record), "queries": record.get("n"),
                      "verdict": record.get("verdict"), "after Holm": record.get("adjusted_verdict") or "—",
                      "headline claim": bool(record.get("primary"))})
        exported.append({"name": record.get("name"), **common, "effect": _number(record.get("effect")),
                         "ci_low": _number(record.get("ci_low")), "ci_high": _number(record.get("ci_high")),
                         "n": record.get("n"), "verdict": record.get("verdict"),
                         "holm_p": _number(record.get("holm_p")), "adjusted_verdict": record.get("adjusted_verdict"),
                         "primary": bool(record.get("primary"))})
    return pd.DataFrame(shown), pd.DataFrame(exported)


def _panels(records: list[dict]) -> list[tuple[str, list[dict]]]:
    units = list(dict.fromkeys([unit for unit in UNIT_TITLES] + [effect_unit(r) for r in records]))
    return [(unit, rows) for unit in units if (rows := [r for r in records if effect_unit(r) == unit])]


def _ratio_axis(rows: list[dict]) -> dict:
    """Log x axis over the ratios' intervals (and 1) with full tick labels."""
    ends = [_number(r.get(key)) for r in rows for key in ("effect", "ci_low", "ci_high")]
    ends = [value for value in ends if np.isfinite(value) and value > 0] or [1.0]
    low, high = min(min(ends), 1.0) / 1.15, max(max(ends), 1.0) * 1.15
    values, labels = charts.log_ticks(low, high)
    return dict(type="log", range=[math.log10(low), math.log10(high)], tickmode="array", tickvals=values,
                ticktext=labels)


def forest_plot(records: list[dict]) -> go.Figure:
    """Effect ± 95% interval per finding, one panel per unit (effect_unit): differences against 0, ratios against
    1 on a log axis with full tick labels. Points coloured by verdict; y labels are finding_label."""
    panels = _panels(records)
    heights = [len(rows) for _, rows in panels] or [1]
    fig = make_subplots(rows=max(len(panels), 1), cols=1, row_heights=heights,
                        vertical_spacing=min(0.3 / max(len(panels), 1), 0.12),
                        subplot_titles=[UNIT_TITLES.get(unit, unit) for unit, _ in panels])
    in_legend = set()
    for row, (unit, rows) in enumerate(panels, start=1):
        for verdict, colour in VERDICT_COLOURS.items():
            chosen = [r for r in rows if r.get("verdict") == verdict]
            if not chosen:
                continue
            effect = [_number(r.get("effect")) for r in chosen]
            fig.add_trace(go.Scatter(
                x=effect, y=[finding_label(r) for r in chosen], mode="markers", name=verdict, legendgroup=verdict,
                showlegend=verdict not in in_legend, marker=dict(color=colour, size=9),
                error_x=dict(type="data", symmetric=False, color=colour, thickness=2,
                             array=[_number(r.get("ci_high")) - e for e, r in zip(effect, chosen)],
                             arrayminus=[e - _number(r.get("ci_low")) for e, r in zip(effect, chosen)]),
                customdata=[[r.get("name", ""), r.get("effect_label", ""), r.get("n", ""),
                             r.get("adjusted_verdict") or "—", effect_text(r)] for r in chosen],
                hovertemplate="%{customdata[0]}<br>%{customdata[1]}: %{customdata[4]}<br>n = %{customdata[2]} "
                              "queries<br>after Holm: %{customdata[3]}<extra></extra>"),
                row=row, col=1)
            in_legend.add(verdict)
        fig.add_vline(x=1.0 if unit == "ratio" else 0.0, line_dash="dot", line_color="grey", row=row, col=1)
        if unit == "ratio":
            fig.update_xaxes(**_ratio_axis(rows), row=row, col=1)
        fig.update_yaxes(autorange="reversed", categoryorder="array",  # the table's order, top to bottom
                         categoryarray=[finding_label(r) for r in rows], row=row, col=1)
    fig.update_layout(legend_title_text="verdict")
    fig.update_annotations(font_size=13)
    return charts._layout(fig, "Findings: effect and 95% interval, one panel per unit",
                          height=150 + 30 * sum(heights) + 70 * len(panels))


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
    """How many findings keep their verdict after Holm's adjustment (which ones: the table's `after Holm`), and
    which headline claims keep theirs."""
    kept = [r["name"] for r in records if r.get("adjusted_verdict") not in (None, "not supported")]
    headline = [r["name"] for r in records if r.get("primary")]
    headline_kept = [r["name"] for r in records if r.get("primary_adjusted_verdict") not in (None, "not supported")]
    family = next((r.get("family_size") for r in records if r.get("family_size") is not None), len(records))
    return (f"After Holm over the run's {family} findings, {len(kept)} keep their verdict. Headline claims "
            f"({', '.join(headline) or 'none'}): " + (f"{len(headline_kept)} of {len(headline)} keep theirs"
                                                     + (f" ({', '.join(headline_kept)})" if headline_kept else "")
                                                     + "."))


def show_findings(run_key, findings: dict) -> None:
    """Render findings.json: the findings table (CSV export with numeric columns), forest plot (PNG/SVG/HTML
    export), the sentences and every record field in expanders; exported files are named after the run directory.
    Older files without a `findings` list show their key/value pairs."""
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
        "the paper's side. " + ("`verdict` is each finding on its own; `after Holm` keeps it only if it "
                                f"survives {findings.get('multiplicity', 'a family-wise adjustment')}."
                                if adjusted else "Each finding is a separate test (no multiple-comparison "
                                                 "correction in this file).")))
    shown, exported = findings_table(records)
    widgets.table(shown, key="findings.table", name=f"findings_{run_name}", export=exported,
                  height=TABLE_ROW_PX * (len(shown) + 1) + 3,  # every finding visible, no inner scroll
                  column_config={"headline claim": st.column_config.CheckboxColumn("headline")})
    if adjusted:
        st.caption(plain_markdown(survivors_line(records)))
    widgets.chart(forest_plot(records), key="findings.forest", name=f"findings_forest_{run_name}")
    with st.expander("Each finding in words"):
        st.markdown("\n".join(finding_sentences(records)))
    with st.expander("Finding records (every field)"):
        frame = pd.DataFrame([{column: record.get(column) for column in RECORD_COLUMNS} for record in records])
        widgets.table(frame, key="findings.records", name=f"findings_records_{run_name}")
