"""Page render times in a real browser: `python -m tests.dashboard.bench_browser RUN [SECOND_RUN]`.

Starts `streamlit run` on a free port, opens every page in Debian's chromium three times (the first visit fills
the caches) by clicking its sidebar link, and prints the seconds until the page's script finished and its
charts are drawn; then times in-page actions (a query with 50 documents per side, a correlation cell, a
completion span, terms and clusters over the query's task) and full loads of URLs whose state misses the caches (other queries and documents of the run)."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
from playwright.sync_api import sync_playwright

from tests.dashboard.serve import dashboard_server

TITLES = ["Overview", "Queries", "Correlations", "Magnitude", "Sources", "Answers", "Documents", "Compare runs"]
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
CARDS_SHOWING = """label => [...document.querySelectorAll('[data-testid=stMarkdownContainer] p')]
  .filter(p => p.innerText.startsWith('#') && p.innerText.includes(' · ' + label + ' ')).length"""  # cards' headers
DRAWN = ".js-plotly-plot, [data-testid=stImage] img, [data-testid=stDataFrame]"   # a chart, an image chart or a table


def cold_urls(run: str) -> list[tuple[str, str]]:
    """(path, title) of views whose state no earlier visit cached: queries and documents picked across the run."""
    queries = [json.loads(line) for line in Path(run, "queries.jsonl").read_text().splitlines() if line.strip()]
    ids = [q["id"] for q in queries]
    doc_ids = pd.read_parquet(Path(run, "documents.parquet"), columns=["id"])["id"].astype(str)
    a, b, c = ids[len(ids) // 3], ids[2 * len(ids) // 3], ids[-1]
    return [(f"queries?q={a}", "Queries"), (f"queries?q={b}&score=gradient-normalised", "Queries"),
            (f"queries?q={c}&k=50", "Queries"), (f"queries?q={b}&scope=task&depth=200", "Queries"), (f"documents?doc={doc_ids.iloc[len(doc_ids) // 2]}", "Documents"),
            (f"correlations?a={a}&b={c}", "Correlations"),
            (f"sources?side=bottom&task={queries[-1]['task']}", "Sources")]


def wait_rendered(page, title: str) -> None:
    page.wait_for_function(f"() => document.querySelector('h1')?.innerText.trim() === {title!r}", timeout=600_000)
    page.wait_for_function(IDLE, timeout=600_000)
    page.wait_for_selector(DRAWN, timeout=600_000)


def loaded_in(page, url: str, title: str) -> float:
    """Seconds for a full browser load of a URL (new session: the Streamlit frontend loads too)."""
    start = time.perf_counter()
    page.goto(url)
    wait_rendered(page, title)
    return time.perf_counter() - start


def navigated_in(page, title: str) -> float:
    """Seconds from clicking a page in the sidebar until it has rendered its charts."""
    start = time.perf_counter()
    page.locator("[data-testid=stSidebar] [data-testid=stPageLink] a", has_text=title).first.click()
    wait_rendered(page, title)
    return time.perf_counter() - start


def acted_in(page, act, done: str) -> float:
    """Seconds from an action until the JS condition `done` holds (it must say that the new state is drawn: the
    status widget can still be absent right after the action), the script is idle and two frames are painted."""
    start = time.perf_counter()
    act()
    page.wait_for_function(done, timeout=600_000, polling=50)
    page.wait_for_function(IDLE, timeout=600_000)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return time.perf_counter() - start


def in_page_actions(page, base: str, run: str) -> None:
    queries = [json.loads(line) for line in Path(run, "queries.jsonl").read_text().splitlines() if line.strip()]
    query = queries[len(queries) // 2]["id"]
    loaded_in(page, f"{base}/queries?q={query}&k=50", "Queries")
    seconds = acted_in(page, lambda: None, f"() => ({CARDS_SHOWING})('raw') >= 100")   # the load's last cards
    print(f"{'queries, 50 per side: all 100 cards drawn after the load':45s} +{seconds:5.2f}")
    for label, what in (("per nat", "same cards"), ("gradient-normalised", "new cards"), ("raw", "new cards")):
        seconds = acted_in(page, lambda: page.get_by_role("radio", name=label).check(force=True),
                           f"() => ({CARDS_SHOWING})({label!r}) >= 100")
        print(f"{f'queries, 50 per side, score kind {label} ({what})':45s} {seconds:6.2f}")
    pills = page.locator("[data-testid=stButtonGroup] button")
    if pills.count():
        seconds = acted_in(page, lambda: pills.first.click(), "() => location.href.includes('span=')")
        print(f"{'queries, choose a completion span':45s} {seconds:6.2f}")
    task = queries[len(queries) // 2]["task"]
    seconds = acted_in(page, lambda: page.get_by_role("radio", name=f"task {task}").check(force=True),
                       "() => location.href.includes('scope=task')")
    print(f"{'queries, terms and clusters over the task':45s} {seconds:6.2f}")
    loaded_in(page, f"{base}/correlations", "Correlations")
    if not page.locator(".js-plotly-plot").count():       # the heatmap is drawn as an image: cells are not plotly's
        print(f"{'correlations, click a cell until the scatter':45s}    n/a (the heatmap is an image)")
        return
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate("""() => { const plot = document.querySelector('.js-plotly-plot');
      const box = plot.querySelector('.draglayer .xy .nsewdrag').getBoundingClientRect();
      return [box.left + plot._fullLayout.xaxis.d2p(1), box.top + plot._fullLayout.yaxis.d2p(3)]; }""")
    seconds = acted_in(page, lambda: page.mouse.click(x, y),
                       "() => document.querySelectorAll('.js-plotly-plot').length >= 3")
    print(f"{'correlations, click a cell until the scatter':45s} {seconds:6.2f}")


def main(runs: list[str]) -> None:
    with dashboard_server(runs) as base:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            print(f"full load of the app: {loaded_in(page, base, 'Overview'):.2f} s")
            order = TITLES[1:] + TITLES[:1] if len(runs) > 1 else [t for t in TITLES[1:] + TITLES[:1]
                                                                      if t != "Compare runs"]
            rounds = [[navigated_in(page, title) for title in order] for _ in range(3)]
            print(f"{'sidebar navigation to':45s} first   second  third")
            for i, title in enumerate(order):
                print(f"{title:45s} " + "  ".join(f"{r[i]:6.2f}" for r in rounds), flush=True)
            print("in-page actions (after the first visit):")
            in_page_actions(page, base, runs[0])
            print("full browser loads (new session, the frontend loads too); reference, all cached:")
            print(f"{'magnitude':45s} {loaded_in(page, f'{base}/magnitude', 'Magnitude'):6.2f}")
            print("full browser loads of URLs with uncached state:")
            for path, title in cold_urls(runs[0]):
                print(f"{path[:45]:45s} {loaded_in(page, f'{base}/{path}', title):6.2f}", flush=True)
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
