"""The "Export report" downloads (overview: the run's findings; Queries: a query set's, and the opened query's): the
self-contained HTML report and the script that regenerates it (dashboard/report.py), each written only when its
button is clicked."""
from __future__ import annotations

import json
import re

import streamlit as st

from dashboard import report
from dashboard.run import Run, RunKey
from precompute.rundir import utc_now


@st.cache_data(show_spinner="Writing the report…", max_entries=4)
def exported(run_key: RunKey, query_set_json: str, opened_json: str = "null") -> tuple[str, str]:
    """(HTML, script) of the run (and query set, and opened query, as JSON), once per run version, set and query."""
    made = f"Made {utc_now()} by Influence Explorer from {run_key[0]}."
    return report.export(run_key[0], json.loads(query_set_json), made, json.loads(opened_json))


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def downloads(run: Run, query_set: dict | None = None, key: str = "report", opened: dict | None = None) -> None:
    """Two download buttons: the report (HTML) and its reproducing script (.py). `opened` ({"id", "kind", "k"}):
    the report also holds that query's documents and per-layer chart, as the Queries page shows them."""
    name = run.path.name + (f"_{_file_part(query_set['name'])}" if query_set else "") + \
        (f"_{_file_part(str(opened['id']))}" if opened else "")
    chosen, query = json.dumps(query_set, sort_keys=True), json.dumps(opened, sort_keys=True)
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    row.download_button("Export report", data=lambda: exported(run.key, chosen, query)[0],
                        file_name=f"report_{name}.html", mime="text/html", key=f"{key}.html", on_click="ignore",
                        icon=":material/summarize:",
                        help="One HTML file that opens offline: findings table and forest plot, the LDS "
                             "leaderboard when the run has one, the analysis pages' charts as they open (whole-run "
                             "reports)" + (", the opened query's documents and per-layer chart" if opened else "")
                             + ", the queries and corpus charts with their data, the settings and the run's file "
                             "hashes, and the script that regenerates it.")
    row.download_button("Script that reproduces it", data=lambda: exported(run.key, chosen, query)[1],
                        file_name=f"reproduce_report_{name}.py", mime="text/x-python", key=f"{key}.py",
                        on_click="ignore", icon=":material/code:")
