"""Magnitude: how much of a task's influence the top p% of documents carry, and power-law slopes."""
from __future__ import annotations

import streamlit as st

from dashboard import charts, url_state, widgets
from dashboard.run import current_run, require_table

SIGNS = ["positive", "negative"]
SCALES = ["relative", "absolute"]


def render() -> None:
    run = current_run()
    st.title("Magnitude")
    by_task = require_table(run, "magnitude_by_task")
    url_state.from_url("magnitude.sign", "sign", SIGNS[0], options=SIGNS)
    url_state.from_url("magnitude.scale", "scale", SCALES[0], options=SCALES)
    url_state.from_url("magnitude.log", "log", False, parse=url_state.parse_bool, options=[True, False])
    left, middle, right = st.columns(3)
    sign = left.radio("Sign", SIGNS, key="magnitude.sign", horizontal=True)
    scale = middle.radio("Scale", SCALES, key="magnitude.scale", horizontal=True,
                         help="relative: share of the sign's total; absolute: summed magnitude")
    log_y = right.toggle("Log y axis", key="magnitude.log")
    url_state.to_url("sign", sign)
    url_state.to_url("scale", scale)
    url_state.to_url("log", log_y)

    value = "relative_mean" if scale == "relative" else "cumulative_mean"
    curves = by_task[by_task["sign"] == sign]
    title = f"Cumulative {sign} influence of the top documents ({scale}, mean over each task's queries)"
    widgets.chart(charts.magnitude_curves(curves, value, title, log_y), key="magnitude.curves",
                  name=f"magnitude_{sign}_{scale}")
    widgets.table(curves, key="magnitude.table", name=f"magnitude_by_task_{sign}")

    st.subheader("Power-law slopes")
    st.caption("Fit of log score against log rank over each query's top positive scores; steeper = more concentrated.")
    power_law = require_table(run, "power_law")
    widgets.chart(charts.slope_boxes(power_law), key="magnitude.slopes", name="power_law_slopes")
    summary = power_law.groupby("task")["slope"].agg(["mean", "std", "count"]).reset_index()
    widgets.table(summary, key="magnitude.slope_summary", name="power_law_by_task")


if __name__ == "__main__":
    render()
