"""Server-side page times: `python -m tests.dashboard.bench_script RUN [SECOND_RUN]`.

Runs every page's script with streamlit.testing.v1.AppTest in one process (caches shared, as in a server):
a warm-up run, then three timed runs; prints the seconds per run (script only, no browser) and the process's CPU
seconds over the four runs (the machine may be shared: wall time grows with the load, CPU time much less). The queries page is
also timed with 50 documents per side (and with its first completion span chosen), with the terms and clusters
pooled over the query's task (k = 100 and 200) and for another query; the correlations page with a chosen pair.
With --relabel the Sources page's label breakdown is timed after a label change before every run (the bench
writes labels into RUN's labels.json: use it on a copy of a run, never on someone's labels)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboard.labels_view import LABEL_COLUMN
from precompute.rundir import labels as run_labels
from tests.dashboard.conftest import APP

PAGES = ["overview", "queries", "correlations", "magnitude", "sources", "answers", "documents", "compare"]


def views(run: str) -> list[tuple[str, dict]]:
    ids = [json.loads(line)["id"] for line in Path(run, "queries.jsonl").read_text().splitlines() if line.strip()]
    extra = [("queries", {"q": ids[len(ids) // 2], "k": "50"}),
             ("queries", {"q": ids[len(ids) // 2], "k": "50", "span": "1"}),  # a completion span chosen
             ("correlations", {"a": ids[len(ids) // 3], "b": ids[-1]}),
             ("queries", {"q": ids[len(ids) // 2], "scope": "task"}),  # terms and clusters pooled over the task
             ("queries", {"q": ids[len(ids) // 2], "scope": "task", "depth": "200"}),
             ("queries", {"q": ids[len(ids) // 4]})]                   # another query's terms and clusters
    return [(page, {}) for page in PAGES] + extra


def relabel(run: str, round_: int) -> None:
    """A label on one more document of RUN (a new labels revision: the label breakdown is recomputed)."""
    doc_ids = pd.read_parquet(Path(run, "documents.parquet"), columns=["id"])["id"].astype(str)
    labels = run_labels.read_labels(run)
    run_labels.set_label(run, doc_ids.iloc[(round_ * 7919) % len(doc_ids)],
                         labels.label_set[round_ % len(labels.label_set)])


def main(runs: list[str], relabelled: bool = False) -> None:
    sys.argv = ["app.py"] + [x for run in runs for x in ("--run", run)]
    print(f"{'page':40s} {'first':>7s} {'then (3 runs)':>22s} {'cpu (4 runs)':>13s}")
    chosen = views(runs[0]) + ([("sources", {"by": LABEL_COLUMN})] if relabelled else [])
    for page, params in chosen:
        at = AppTest.from_file(APP, default_timeout=600)
        at.run()
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        for name, value in params.items():
            at.query_params[name] = value
        times, cpu = [], time.process_time()
        for round_ in range(4):
            if params.get("by") == LABEL_COLUMN:
                relabel(runs[0], round_)
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
        label = page + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        print(f"{label[:40]:40s} {times[0]:7.2f} " + " ".join(f"{t:6.2f}" for t in times[1:])
              + f" {time.process_time() - cpu:13.2f}", flush=True)


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if a != "--relabel"], relabelled="--relabel" in sys.argv[1:])
