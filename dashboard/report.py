"""An exported report: ONE self-contained HTML file (findings table and forest plot, the LDS leaderboard when the run
has one, the analysis pages' charts as they open, the opened query's documents and per-layer chart when exported
from the Queries page, the settings and the run's file hashes; plotly.js inlined, no request to any host) and the
Python script that regenerates it from the run directory.

The numbers come from precompute.analysis.report.report_numbers (torch-free) and are embedded in the HTML as JSON
(`<script type="application/json" id="report-numbers">`); the figures are drawn from those numbers by the same
builders as the pages (findings_view.forest_plot, lds_view, charts.count_bars). The script calls report_numbers on
the run directory again, draws the report again, and compares both with the report it came with.
"""
from __future__ import annotations

import html
import json
import pprint
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from dashboard import charts, findings_view, lds_view, score_help
from dashboard.views import answers, sources
from dashboard.views.correlations import unique_task_pairs
from dashboard.views.magnitude import SCALES as MAGNITUDE_SCALES

NUMBERS_ID = "report-numbers"
SCRIPT_ID = "reproduce-script"
REPOSITORY = Path(__file__).resolve().parent.parent
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow-x:auto;
font-size:.8em}.note{color:#555;font-size:.9em}"""


LINE_BREAK = "\u2028"   # a text's line breaks through pandas' HTML writer (which writes "\n" as a backslash and n)


def _table_html(frame: pd.DataFrame) -> str:
    frame = frame.apply(lambda column: column.map({True: "yes", False: ""}) if column.dtype == bool else
                        column.map(lambda v: v.replace("\n", LINE_BREAK) if isinstance(v, str) else v))
    drawn = frame.to_html(index=False, escape=True, na_rep="–", border=0, float_format="{:.4g}".format)
    return drawn.replace(LINE_BREAK, "<br>")


def _figure_html(fig: go.Figure, div_id: str) -> str:
    """The figure as a <div> and its script; a template given by name (figures built without validation, e.g.
    charts.source_small_multiples) is written out as the template itself, as plotly's HTML writer needs."""
    drawn = fig.to_dict()
    template = drawn.get("layout", {}).get("template")
    if isinstance(template, str):
        drawn["layout"]["template"] = pio.templates[template].to_plotly_json()
    return pio.to_html(drawn, include_plotlyjs=False, full_html=False, div_id=div_id, validate=False,
                       config={"displaylogo": False})


def leaderboard(numbers: dict) -> pd.DataFrame | None:
    """The run's LDS leaderboard over all tasks (lds_view.leaderboard), or None when the run has no LDS."""
    summary, validation = (numbers["tables"].get(name) for name in ("lds_summary", "validation_summary"))
    if not summary:
        return None
    return lds_view.leaderboard(pd.DataFrame(summary), pd.DataFrame(validation) if validation else None)


def records_frame(records: list[dict]) -> pd.DataFrame:
    """A table back from the report's JSON: missing numbers (NaN, written as null) are NaN again, so the pages'
    chart builders see what they see on the page."""
    frame = pd.DataFrame(records)
    for column in frame.columns:
        if frame[column].dtype == object:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if numbers.notna().sum() == frame[column].notna().sum():
                frame[column] = numbers
    return frame


VIEW_SECTIONS = (("task-correlations", "Correlations"), ("magnitude", "Magnitude"), ("answers", "Answers"),
                 ("sources", "Sources"))


def view_figures(numbers: dict) -> dict[str, go.Figure]:
    """The analysis pages' charts as they open (whole-run reports), drawn by the pages' own builders: the task-pair
    correlation matrix, each task's cumulative positive influence (relative, log y), the answer enrichment at the
    finding's k, the sources' multipliers of the top side."""
    views, found = numbers.get("views") or {}, {}
    n_documents = numbers["counts"].get("documents")
    if views.get("answer_enrichment"):
        found["answers"] = answers.opening_figure(records_frame(views["answer_enrichment"]), n_documents)
    if views.get("source_multipliers"):
        figure = sources.opening_figure(records_frame(views["source_multipliers"]), n_documents)
        if figure is not None:
            found["sources"] = figure
    if views.get("task_correlations"):
        found["task-correlations"] = charts.task_matrix(unique_task_pairs(records_frame(views["task_correlations"])))
    if views.get("magnitude_by_task"):
        frame = records_frame(views["magnitude_by_task"])
        column, band, y_title = MAGNITUDE_SCALES["relative"]
        found["magnitude"] = charts.magnitude_curves(
            frame[frame["sign"] == "positive"], column, "Cumulative positive influence of each task's top documents "
            "(relative; from one document up)", True, y_title, numbers["counts"].get("documents"), band)
    return found


def figures(numbers: dict) -> dict[str, go.Figure]:
    """div id -> figure: the forest plot, the leaderboard's intervals (when any), queries per task, corpus by
    source."""
    records = [r for r in numbers["findings"].get("findings") or [] if isinstance(r, dict)]
    found = {"forest-plot": findings_view.forest_plot(records)} if records else {}
    board = leaderboard(numbers)
    if board is not None:
        found["lds-intervals"] = lds_view.interval_figure(board, "LDS per ranking method (95% intervals)")
    found.update(view_figures(numbers))
    if numbers.get("query"):
        opened = numbers["query"]
        layers = opened["layers"]
        found["query-layers"] = charts.layer_split(layers["layer"], np.asarray(layers["positive"]),
                                                   np.asarray(layers["negative"]),
                                                   f"Per-layer influence of {opened['query']['id']}")
    counts = numbers["counts"]
    found["queries-per-task"] = charts.count_bars(pd.Series(counts["queries_per_task"]), "Queries per task", "task")
    found["documents-per-source"] = charts.count_bars(pd.Series(counts["documents_per_source"]),
                                                      "Corpus by source", "source")
    return found


def _settings_html(numbers: dict) -> str:
    settings = numbers["settings"]
    query_set = settings.get("query_set")
    rows = [("run directory", settings["run"]), ("bootstrap seed", settings["seed"]),
            ("bootstrap resamples", settings["n_resamples"])]
    if query_set:
        rows += [("query set", query_set["name"]), ("its filter expression", query_set["expression"]),
                 ("its queries", f"{len(query_set['query_ids'])}: {', '.join(query_set['query_ids'])}")]
    rows += [(f"run: {key}", value) for key, value in settings.get("run_settings", {}).items()]
    return _table_html(pd.DataFrame([(key, str(value)) for key, value in rows], columns=["setting", "value"]))


def _query_parts(opened: dict, layers_html: str) -> list[str]:
    """The opened query's section: its text, its top and bottom documents as the Queries page listed them, its
    per-layer chart."""
    query, kind = opened["query"], opened["kind"]
    label = next((name for name, value in score_help.SCORE_KINDS.items() if value == kind), kind)
    facts = pd.DataFrame([(field, "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
                          for field, value in query.items()], columns=["field", "value"])
    parts = [f"<h2>The opened query: {html.escape(str(query['id']))}</h2>", _table_html(facts)]
    for side, heading in (("top", "Most positive"), ("bottom", "Most negative")):
        parts += [f"<h3>{heading} {opened['k']} documents ({html.escape(label)} score)</h3>",
                  _table_html(pd.DataFrame(opened[side], columns=["rank", "doc_id", "source", "score", "text"]))]
    return parts + [layers_html]


def _scope_note(numbers: dict, has_board: bool) -> str:
    query_set = numbers["settings"].get("query_set")
    if not query_set:
        return "Findings: the run's own (analysis/findings.json)."
    n = len(query_set["query_ids"])
    return (f"Findings recomputed on the query set “{query_set['name']}” ({n} queries) as "
            "if they were the whole run; Holm's adjustment is over the set's findings; tail-patch and LDS findings "
            "are not recomputed for a set (their files hold every query)"
            + (", and the leaderboard below is the whole run's." if has_board else "."))


def embedded_json(value) -> str:
    """JSON safe inside a <script> element: every `<` written as \\u003c, so no text can close or open a tag."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def report_html(numbers: dict, script: str, made: str = "") -> str:
    """The report as one HTML page: plotly.js inlined once, every figure's data in the page, the numbers as JSON
    and the script that regenerates them."""
    title = f"Influence Explorer report: {numbers['settings']['run']}"
    query_set = numbers["settings"].get("query_set")
    if query_set:
        title += f", query set “{query_set['name']}”"
    records = [r for r in numbers["findings"].get("findings") or [] if isinstance(r, dict)]
    drawn = {div: _figure_html(fig, div) for div, fig in figures(numbers).items()}
    board = leaderboard(numbers)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>{html.escape(made)} {html.escape(_scope_note(numbers, board is not None))}</p>",
             "<h2>Findings</h2>",
             _table_html(findings_view.findings_table(records)[0]) if records
             else "<p>No findings for these queries.</p>",
             drawn.get("forest-plot", "")]
    if board is not None:
        parts += ["<h2>Ranking-method leaderboard (LDS against the PBRF response)</h2>",
                  _table_html(lds_view.leaderboard_display(board)), drawn["lds-intervals"]]
    views = [(div, page) for div, page in VIEW_SECTIONS if div in drawn]
    if views:
        parts += [f"<h2>The analysis views (as the {', '.join(page for _, page in views)} pages open)</h2>",
                  *(drawn[div] for div, _ in views)]
    elif query_set:
        parts += ["<p class='note'>The analysis views' charts are the whole run's; a query set's report leaves them "
                  "out.</p>"]
    if numbers.get("query"):
        parts += _query_parts(numbers["query"], drawn["query-layers"])
    parts += ["<h2>The queries and the corpus</h2>", drawn["queries-per-task"], drawn["documents-per-source"],
              "<h2>Settings</h2>", _settings_html(numbers), "<h2>The run's files (sha256)</h2>",
              _table_html(pd.DataFrame(list(numbers["hashes"].items()), columns=["file", "sha256"])),
              "<h2>Reproduce this report</h2>",
              "<p>Save the script below as <code>reproduce_report.py</code> and run it with the Influence Explorer "
              "repository's Python (no torch needed): <code>python reproduce_report.py [RUN_DIR] --compare "
              "THIS_REPORT.html</code>. It recomputes every number from the run directory, checks the run's file "
              "hashes, draws this report again and says whether every number agrees.</p>",
              f"<pre id='{SCRIPT_ID}'>{html.escape(script)}</pre>"]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
            + "\n".join(parts)
            + f"<script type='application/json' id='{NUMBERS_ID}'>{embedded_json(numbers)}</script></body></html>")


def embedded_numbers(page: str) -> dict:
    """The numbers JSON embedded in a report's HTML."""
    found = re.search(f"<script type='application/json' id='{NUMBERS_ID}'>(.*?)</script>", page, re.S)
    if found is None:
        raise ValueError(f"no <script id='{NUMBERS_ID}'> in this HTML: not an Influence Explorer report")
    return json.loads(found.group(1))


SCRIPT_TEMPLATE = '''"""Regenerates every number and figure of an Influence Explorer report from its run directory.

    python reproduce_report.py [RUN_DIR] [--compare REPORT.html] [--out DIR] [--repository DIR]

Torch-free. Writes DIR/report_numbers.json (the numbers the report embeds) and DIR/report.html (the report
drawn again), says whether the run's files are those the report was made from (sha256), and with --compare
whether every number agrees with the report's. Exit status 1 when a hash or a number differs.
"""
import argparse
import json
import os
import sys

RUN_DIR = {run_dir}
REPOSITORY = {repository}
QUERY_SET = {query_set}
OPENED = {opened}
SEED = {seed}
N_RESAMPLES = {n_resamples}
HASHES = {hashes}
COMPARED = ("findings", "tables", "views", "counts", "query")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=RUN_DIR)
    parser.add_argument("--compare", help="the report's HTML file: compare its embedded numbers")
    parser.add_argument("--out", default=".", help="folder for report_numbers.json and report.html")
    parser.add_argument("--repository", default=REPOSITORY, help="the Influence Explorer repository")
    args = parser.parse_args()
    sys.path.insert(0, args.repository)
    import streamlit.logger   # the figures' builders live beside the dashboard's pages: no "no runtime" warnings
    streamlit.logger.set_log_level("error")
    from precompute.analysis.report import file_hashes, report_numbers
    from dashboard.report import embedded_numbers, report_html

    status = 0
    for name, digest in file_hashes(args.run_dir).items():
        if HASHES.get(name, digest) != digest:
            print(f"{{name}}: differs from the report's run (sha256 {{digest[:12]}}…, "
                  f"report {{HASHES[name][:12]}}…)")
            status = 1
    numbers = report_numbers(args.run_dir, QUERY_SET, SEED, N_RESAMPLES, OPENED)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report_numbers.json"), "w", encoding="utf-8") as handle:
        json.dump(numbers, handle, indent=1, ensure_ascii=False)
    with open(__file__, encoding="utf-8") as handle:
        script = handle.read()
    with open(os.path.join(args.out, "report.html"), "w", encoding="utf-8") as handle:
        handle.write(report_html(numbers, script))
    if args.compare:
        with open(args.compare, encoding="utf-8") as handle:
            reported = embedded_numbers(handle.read())
        same = all(reported.get(part) == numbers.get(part) for part in COMPARED)
        print("every number agrees with the report" if same else "numbers DIFFER from the report")
        status = status or (0 if same else 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
'''


def reproduce_script(numbers: dict, run_path: str) -> str:
    """The script that regenerates `numbers` (and the report) from the run directory at `run_path`."""
    settings = numbers["settings"]
    return SCRIPT_TEMPLATE.format(run_dir=repr(str(Path(run_path).resolve())), repository=repr(str(REPOSITORY)),
                                  query_set=repr(settings.get("query_set")), opened=repr(settings.get("opened")),
                                  seed=repr(settings["seed"]),
                                  n_resamples=repr(settings["n_resamples"]),
                                  hashes=pprint.pformat(numbers["hashes"], width=116))


def export(run_path: str, query_set: dict | None = None, made: str = "",
           opened: dict | None = None) -> tuple[str, str]:
    """(report HTML, script) for the run at `run_path`, optionally on a query set and with the Queries page's
    opened query ({"id", "kind", "k"})."""
    from precompute.analysis.report import report_numbers

    numbers = report_numbers(run_path, query_set, opened=opened)
    script = reproduce_script(numbers, run_path)
    return report_html(numbers, script, made), script
