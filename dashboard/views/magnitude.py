"""Magnitude: how much of a task's influence the top p% of documents carry, and power-law slopes."""
from __future__ import annotations

import streamlit as st

from dashboard import charts, url_state, widgets
from dashboard.run import current_run, require_table

SIGNS = ["positive", "negative"]
SCALES = ["relative", "absolute"]
Y_TITLES = {"relative": "share of the sign's total influence (mean over queries)",
            "absolute": "summed |raw score| of the top documents (mean over queries)"}


def render() -> None:
    run = current_run()
    st.title("Magnitude")
    by_task = require_table(run, "magnitude_by_task")
    left, middle, right = st.columns(3)
    sign = url_state.bound(left.radio, "Sign", key="magnitude.sign", param="sign", default=SIGNS[0],
                           options=SIGNS, horizontal=True)
    scale = url_state.bound(middle.radio, "Scale", key="magnitude.scale", param="scale", default=SCALES[0],
                            options=SCALES, horizontal=True,
                            help="relative: share of the sign's total; absolute: summed magnitude")
    log_y = url_state.bound(right.toggle, "Log y axis", key="magnitude.log", param="log", default=False,
                            parse=url_state.parse_bool, allowed=[True, False])

    value = "relative_mean" if scale == "relative" else "cumulative_mean"
    curves = by_task[by_task["sign"] == sign]
    title = f"Cumulative {sign} influence of each task's top documents ({scale}; from one document up)"
    widgets.chart(charts.magnitude_curves(curves, value, title, log_y, Y_TITLES[scale], run.n_documents),
                  key="magnitude.curves", name=f"magnitude_{sign}_{scale}")
    widgets.table(curves, key="magnitude.table", name=f"magnitude_by_task_{sign}")

    st.subheader("Power-law slopes")
    st.caption("Fit of log score against log rank over each query's top positive scores; steeper = more concentrated.")
    power_law = require_table(run, "power_law")
    widgets.chart(charts.slope_boxes(power_law), key="magnitude.slopes", name="power_law_slopes")
    summary = power_law.groupby("task")["slope"].agg(["mean", "std", "count"]).reset_index()
    widgets.table(summary, key="magnitude.slope_summary", name="power_law_by_task")


if __name__ == "__main__":
    render()
