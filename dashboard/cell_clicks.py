"""Clicks on the correlation heatmap, sent to Python.

The heatmap is a plotly go.Heatmap (one image: it draws in a tenth of the time of thousands of WebGL markers), but
Streamlit's plotly selections do not cover heatmaps. This JavaScript-only component (st.components.v2: no iframe,
no build step, nothing fetched) finds the plot whose layout.meta is charts.HEATMAP_META, listens to plotly's own
click event and sends the clicked cell's (row, column) query ids back as a trigger value for one rerun."""
from __future__ import annotations

import streamlit as st

from dashboard.charts import HEATMAP_META

_JS = """
export default function (component) {
  const { setTriggerValue, data } = component;
  const attach = () => {
    document.querySelectorAll('.js-plotly-plot').forEach((plot) => {
      if (plot.__ieCellClicks || !plot._fullLayout || plot._fullLayout.meta !== data.meta) return;
      plot.__ieCellClicks = true;
      plot.on('plotly_click', (event) => {
        const point = event && event.points && event.points[0];
        if (point && point.z !== null && point.z !== undefined) {
          setTriggerValue('cell', [String(point.y), String(point.x)]);
        }
      });
    });
  };
  attach();
  const timer = setInterval(attach, 300);
  return () => clearInterval(timer);
}
"""

_component = st.components.v2.component("influence_explorer.heatmap_cell_clicks", js=_JS)


def clicked_cell(key: str) -> tuple[str, str] | None:
    """The (row, column) query ids of the cell clicked since the last run, else None. Call it on every run of
    the page (it is mounted where it is called; it draws nothing)."""
    result = _component(key=key, data={"meta": HEATMAP_META}, on_cell_change=lambda: None)
    cell = getattr(result, "cell", None)
    return (str(cell[0]), str(cell[1])) if isinstance(cell, (list, tuple)) and len(cell) == 2 else None
