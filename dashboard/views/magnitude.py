"""Magnitude: how much of a task's influence the top p% of documents carry (per nat of completion information,
as Ruis et al. compare it, or as raw sums and shares), and power-law slopes."""
from __future__ import annotations

import streamlit as st

from dashboard import charts, score_help, url_state, widgets
from dashboard.run import analysis_table, current_run, findings, require_table

SIGNS = ["positive", "negative"]
SCALES = {  # label: (column, interval columns or None, y axis title)
    "per nat": ("per_nat_mean", ("per_nat_ci_low", "per_nat_ci_high"),
                "influence per nat (mean over queries)"),
    "relative": ("relative_mean", None, "share of the sign's total (mean)"),
    "absolute": ("cumulative_mean", None, "summed |raw score| (mean over queries)"),
}


def render() -> None:
    run = current_run()
    st.title("Magnitude")
    by_task = require_table(run, "magnitude_by_task")
    scales = [label for label, (column, _, _) in SCALES.items() if column in by_task.columns]
    defined = [label for label in scales if by_task[SCALES[label][0]].notna().any()]  # e.g. no nats: no per nat
    left, middle, right = st.columns(3)
    sign = url_state.bound(left.radio, "Sign", key="magnitude.sign", param="sign", default=SIGNS[0],
                           options=SIGNS, horizontal=True)
    scale = url_state.bound(middle.radio, "Scale", key="magnitude.scale", param="scale",
                            default=(defined or scales)[0],
                            options=scales, horizontal=True,
                            help="per nat: the influence of the top documents divided by the completion's "
                                 "information (nats), comparable across queries; relative: share of the sign's "
                                 "total; absolute: summed magnitude")
    log_y = url_state.bound(right.toggle, "Log y axis", key="magnitude.log", param="log", default=True,
                            parse=url_state.parse_bool, allowed=[True, False],
                            help="On by default: the top 0.1% and the top 100% differ by orders of magnitude, so a "
                                 "linear axis flattens every curve below 1%.")

    column, band, y_title = SCALES[scale]
    curves = by_task[by_task["sign"] == sign]
    title = f"Cumulative {sign} influence of each task's top documents ({scale}; from one document up)"
    if scale not in defined:
        st.info(f"No task has a {scale} value in this run (per nat needs each completion's information in nats, "
                "which an imported run without the model lacks).")
    else:
        widgets.chart(charts.magnitude_curves(curves, column, title, log_y, y_title, run.n_documents, band),
                      key="magnitude.curves", name=f"magnitude_{sign}_{scale.replace(' ', '_')}")
    st.caption("Per nat: the summed raw scores of the top p% documents ÷ the completion's information (nats), "
               "averaged over the task's queries, with its 95% bootstrap interval (shaded). Relative: the same sum "
               "as a share of all the sign's influence. Absolute: the sum itself.")
    if "n_low_information" in curves.columns and curves["n_low_information"].sum():
        left_out = curves.groupby("task")["n_low_information"].first()
        st.caption(f"Per nat leaves out low-information queries ({score_help.LOW_INFORMATION}): "
                   + ", ".join(f"{task} {int(n)}" for task, n in left_out.items() if n))
    shown = charts.from_one_document(curves, run.n_documents)
    widgets.table(shown, key="magnitude.table", name=f"magnitude_by_task_{sign}",
                  column_config={"percentile": st.column_config.NumberColumn("top p% of documents", format="%.3g%%")})

    information_section(run)

    st.subheader("Power-law slopes")
    st.caption("Fit of log score against log rank over each query's top positive scores; steeper = more concentrated.")
    power_law = require_table(run, "power_law")
    widgets.chart(charts.slope_boxes(power_law), key="magnitude.slopes", name="power_law_slopes")
    summary = analysis_table(run.key, "power_law_by_task")
    if summary is None:
        summary = power_law.groupby("task")["slope"].agg(["mean", "std", "count"]).reset_index()
    widgets.table(summary, key="magnitude.slope_summary", name="power_law_by_task")


def information_section(run) -> None:
    """Top influence against completion information per query, and the information-adjusted finding."""
    table = analysis_table(run.key, "magnitude_information")
    if table is None or not (table["log_nats"].notna() & table["log_top_influence"].notna()).any():
        return  # no query with both numbers (e.g. no nats in an imported run): nothing to plot
    st.subheader("Influence and information")
    widgets.chart(charts.information_scatter(table, "Top-1% influence against completion information, per query"),
                  key="magnitude.information", name="magnitude_information")
    record = next((r for r in (findings(run.key) or {}).get("findings") or []
                   if r.get("name") == "magnitude.information_adjusted"), None)
    adjusted = ""
    if record and record.get("effect") is not None and record.get("ci_low") is not None:
        slope = (record.get("parts") or {}).get("slope_log_nats")
        adjusted = (f" Fitted slope of ln influence on ln nats: {slope:.3g}; at equal nats reasoning ÷ factual = "
                    f"{record['effect']:.3g}× (95% CI {record['ci_low']:.3g} to {record['ci_high']:.3g}; "
                    f"{record.get('verdict')}, after Holm {record.get('adjusted_verdict', '—')})."
                    if slope is not None else "")
    st.caption("Dotted lines: the fit ln influence = a + b·ln nats + c·reasoning (factual queries c = 0). A slope b "
               "other than 1 means dividing by nats does not remove the dependence on information, so the per-nat "
               "comparison above mixes information content with reliance on documents." + adjusted)


if __name__ == "__main__":
    render()
