"""Overview (home): the findings and the counterfactual tests first, then what the run is, how it was made, and
sanity checks on its numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, published_view, report_view, run_choice, widgets
from dashboard.findings_view import show_findings
from dashboard.run import Run, RunKey, current_run, findings
from precompute.analysis.report import run_settings
from dashboard import lds_view, validation_view
from precompute.rundir import layout

_CHECK_COLUMNS = 200_000  # documents read for the layer-sum check on big runs


@st.cache_data(show_spinner="Checking the numbers…", max_entries=8)
def sanity_checks(run_key: RunKey, _run: Run) -> pd.DataFrame:
    """NaN / inf counts of every array and how well layer scores sum to scores (on a column sample)."""
    rows = []
    for name, array in ((layout.SCORES, _run.scores), (layout.NORMALIZED_SCORES, _run.normalized),
                        (layout.GRAD_NORMS, _run.grad_norms)):
        flat = np.asarray(array).reshape(-1)
        rows.append((name, "NaN count", int(np.isnan(flat).sum())))
        rows.append((name, "inf count", int(np.isinf(flat).sum())))
    n = min(_run.n_documents, _CHECK_COLUMNS)
    summed = np.asarray(_run.layer_scores[:, :, :n]).sum(axis=1, dtype=np.float64)
    direct = np.asarray(_run.scores[:, :n], dtype=np.float64)
    scale = max(float(np.nanmax(np.abs(direct))), 1e-30) if direct.size else 1.0
    rows.append((layout.LAYER_SCORES, f"max |Σ layers − score| / max |score| (first {n:,} docs)",
                 float(np.nanmax(np.abs(summed - direct)) / scale) if direct.size else 0.0))
    rows.append((layout.LAYER_SCORES, "NaN count (same docs)", int(np.isnan(summed).sum())))
    rows.append((layout.GRAD_NORMS, "zero norms", int((np.asarray(_run.grad_norms) == 0).sum())))
    return pd.DataFrame(rows, columns=["file", "check", "value"]).astype({"value": "float64"})


SHORT_MODEL = 20  # characters of a model name the metric shows whole at the page's width


def render() -> None:
    run = current_run()
    manifest = run.manifest
    st.title("Overview")
    st.caption(f"Run directory: {widgets.markdown_text(run_choice.display_name(str(run.path)))}")
    if manifest.get("synthetic"):
        st.info("This is a synthetic run (`precompute synth`): the numbers are generated, not computed from a model.")
    published_view.overview_note(run)  # imported runs: whose scores, which sample
    columns = st.columns([2, 1, 1, 1, 1])
    imported = published_view.imported(manifest)
    model = manifest.get("model") or (imported.get("model", "published") if imported
                                      else "none (synthetic)" if manifest.get("synthetic") else "not recorded")
    model = str(model)   # a long path shows its last part (the metric truncates); the whole of it is in the help
    shown = model if len(model) <= SHORT_MODEL else (model.rstrip("/").rsplit("/", 1)[-1] or model)
    columns[0].metric("Model (imported)" if imported and not manifest.get("model") else "Model", shown,
                      help=f"model: {model}")
    columns[1].metric("Strategy", str(manifest.get("strategy", "?")), help=f"fisher: {manifest.get('fisher', '?')}")
    columns[2].metric("Queries", f"{run.n_queries:,}")
    columns[3].metric("Documents", f"{run.n_documents:,}")
    columns[4].metric("Layers", f"{len(run.layers):,}")

    # findings first (what a reader came for), then the counterfactual tests, then the run's facts
    found = findings(run.key)
    if found:
        st.subheader("Findings")
        show_findings(run.key, found)
        report_view.downloads(run)  # one self-contained HTML report and the script that regenerates it
    lds_view.leaderboard_section(run)  # LDS vs PBRF leaderboard (runs made with `precompute counterfactual`)
    validation_view.run_summary(run)  # tail-patch validation table (runs made with `precompute validate`)

    st.subheader("The run")
    left, right = st.columns(2)
    with left:
        widgets.chart(charts.count_bars(run.documents["source"].value_counts(), "Corpus by source", "source"),
                      key="overview.sources", name="corpus_sources")
    with right:
        widgets.chart(charts.count_bars(run.queries["task"].value_counts(), "Queries per task", "task",
                                       by_task=True),
                      key="overview.tasks", name="queries_per_task")

    left, right = st.columns(2)
    with left:
        st.subheader("Settings")
        settings = run_settings(manifest)  # the same list the exported report gives
        settings_table = pd.DataFrame({"setting": list(settings), "value": ["" if v is None else str(v)
                                                                          for v in settings.values()]})
        widgets.table(settings_table, key="overview.settings", name="settings")
        st.subheader("Timings (s)")
        timings = manifest.get("timings") or {}
        widgets.table(pd.DataFrame({"stage": list(timings), "seconds": [float(v) for v in timings.values()]}),
                      key="overview.timings", name="timings")
    with right:
        st.subheader("Sanity checks")
        widgets.table(sanity_checks(run.key, run), key="overview.checks", name="sanity_checks")


if __name__ == "__main__":
    render()
