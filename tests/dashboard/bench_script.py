"""Server-side page times: `python -m tests.dashboard.bench_script RUN [SECOND_RUN]`.

Runs every page's script with streamlit.testing.v1.AppTest in one process (caches shared, as in a server):
a warm-up run, then three timed runs; prints the seconds per run (script only, no browser)."""
from __future__ import annotations

import sys
import time

from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP

PAGES = ["overview", "queries", "correlations", "magnitude", "sources", "answers", "documents", "compare"]


def main(runs: list[str]) -> None:
    sys.argv = ["app.py"] + [x for run in runs for x in ("--run", run)]
    print(f"{'page':14s} {'first':>7s} {'then (3 runs)':>22s}")
    for page in PAGES:
        at = AppTest.from_file(APP, default_timeout=600)
        at.run()
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        times = []
        for _ in range(4):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
        print(f"{page:14s} {times[0]:7.2f} " + " ".join(f"{t:6.2f}" for t in times[1:]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
