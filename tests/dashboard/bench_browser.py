"""Page render times in a real browser: `python -m tests.dashboard.bench_browser RUN [SECOND_RUN]`.

Starts `streamlit run` on a free port, opens every page in Debian's chromium three times (the first load fills
the caches) by clicking its sidebar link, and prints the seconds until the page's script finished and its
charts are drawn; then times full loads of URLs whose state misses the caches (another query, document)."""
from __future__ import annotations

import shutil
import sys
import time

from playwright.sync_api import sync_playwright

from tests.dashboard.serve import dashboard_server

TITLES = ["Overview", "Queries", "Correlations", "Magnitude", "Sources", "Answers", "Documents", "Compare runs"]
COLD = ["queries?q=q0042", "queries?q=q0077&score=gradient-normalised", "documents?doc=doc-0500000",
        "correlations?a=q0003&b=q0090", "sources?task=slopes&side=bottom&k=5000"]


def wait_rendered(page, title: str) -> None:
    page.wait_for_function(f"() => document.querySelector('h1')?.innerText.trim() === {title!r}", timeout=600_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=600_000)
    page.wait_for_selector(".js-plotly-plot", timeout=600_000)


def loaded_in(page, url: str, title: str) -> float:
    """Seconds for a full browser load of a URL (new session: the Streamlit frontend loads too)."""
    start = time.perf_counter()
    page.goto(url)
    wait_rendered(page, title)
    return time.perf_counter() - start


def navigated_in(page, title: str) -> float:
    """Seconds from clicking a page in the sidebar until it has rendered its charts."""
    start = time.perf_counter()
    page.locator("[data-testid=stSidebarNav] a", has_text=title).first.click()
    wait_rendered(page, title)
    return time.perf_counter() - start


def main(runs: list[str]) -> None:
    with dashboard_server(runs) as base:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            print(f"full load of the app: {loaded_in(page, base, 'Overview'):.2f} s")
            rounds = [[navigated_in(page, title) for title in TITLES[1:] + TITLES[:1]] for _ in range(3)]
            print(f"{'sidebar navigation to':45s} first   second  third")
            for i, title in enumerate(TITLES[1:] + TITLES[:1]):
                print(f"{title:45s} " + "  ".join(f"{r[i]:6.2f}" for r in rounds), flush=True)
            print("full browser loads (new session, the frontend loads too); reference, all cached:")
            print(f"{'magnitude':45s} {loaded_in(page, f'{base}/magnitude', 'Magnitude'):6.2f}")
            print("full browser loads of URLs with uncached state:")
            for path in COLD:
                title = next(t for t in TITLES if t.lower().startswith(path.split("?")[0][:5]))
                print(f"{path:45s} {loaded_in(page, f'{base}/{path}', title):6.2f}", flush=True)
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
