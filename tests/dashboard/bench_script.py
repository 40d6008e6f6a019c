"""Server-side page times: `python -m tests.dashboard.bench_script RUN [SECOND_RUN]`.

Runs every page's script with streamlit.testing.v1.AppTest in one process (caches shared, as in a server):
a warm-up run, then three timed runs; prints the seconds per run (script only, no browser). The queries page is
also timed with 50 documents per side (and with its first completion span chosen) and the correlations page
with a chosen pair."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP

PAGES = ["overview", "queries", "correlations", "magnitude", "sources", "answers", "documents", "compare"]


def views(run: str) -> list[tuple[str, dict]]:
    ids = [json.loads(line)["id"] for line in Path(run, "queries.jsonl").read_text().splitlines() if line.strip()]
    extra = [("queries", {"q": ids[len(ids) // 2], "k": "50"}),
             ("queries", {"q": ids[len(ids) // 2], "k": "50", "span": "1"}),  # a completion span chosen
             ("correlations", {"a": ids[len(ids) // 3], "b": ids[-1]})]
    return [(page, {}) for page in PAGES] + extra


def main(runs: list[str]) -> None:
    sys.argv = ["app.py"] + [x for run in runs for x in ("--run", run)]
    print(f"{'page':40s} {'first':>7s} {'then (3 runs)':>22s}")
    for page, params in views(runs[0]):
        at = AppTest.from_file(APP, default_timeout=600)
        at.run()
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        for name, value in params.items():
            at.query_params[name] = value
        times = []
        for _ in range(4):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
        label = page + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        print(f"{label[:40]:40s} {times[0]:7.2f} " + " ".join(f"{t:6.2f}" for t in times[1:]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
