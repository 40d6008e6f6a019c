"""Real browser: `streamlit run` on a free port, Playwright (sync API) driving Debian's chromium.

Never downloads a browser: chromium comes from the system (`apt-get install -y chromium`). Every request the
page makes is recorded; the last test fails if any went to a host other than the app's own."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.dashboard.serve import dashboard_server

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium")
PAGES = [("", "Overview"), ("queries?q=q0000", "Queries"), ("correlations", "Correlations"),
         ("magnitude", "Magnitude"), ("sources", "Sources"), ("answers", "Answers"),
         ("documents?doc=doc-0000010", "Documents"), ("compare", "Compare runs")]
SCREENSHOTS = Path(os.environ.get("DASHBOARD_SCREENSHOTS", "")) if os.environ.get("DASHBOARD_SCREENSHOTS") else None
TIMEOUT = 90_000
REQUESTS: list[str] = []


@pytest.fixture(scope="module")
def server(run_dir, second_run_dir):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")
    with dashboard_server([run_dir, second_run_dir]) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        context.on("request", lambda request: REQUESTS.append(request.url))
        yield context.new_page()
        browser.close()


def wait_until_rendered(page) -> None:
    page.wait_for_selector("h1", timeout=TIMEOUT)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT)


def url(page) -> str:
    return page.evaluate("() => window.location.href")


def test_every_page_renders_charts(server, page):
    for path, title in PAGES:
        page.goto(f"{server}/{path}")
        wait_until_rendered(page)
        assert page.locator("h1").first.inner_text().strip() == title
        assert page.locator(".stException").count() == 0, path
        page.wait_for_selector(".js-plotly-plot", timeout=TIMEOUT)
        if SCREENSHOTS is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{title.lower().split()[0]}.png"))
    icon = page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\").href")
    assert icon.startswith(server), icon  # the page icon is the app's own file


def test_markup_in_documents_stays_text(server, page):
    page.goto(f"{server}/queries?q=q0000")
    wait_until_rendered(page)
    page.wait_for_selector(".token-heatmap", timeout=TIMEOUT)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert "<script>alert(3)</script>" in page.inner_text("body")
    assert page.locator("img[src=x]").count() == 0
    assert not dialogs


def click_table_row(page, table, row: int) -> None:
    """Click the selection box of a row of a Streamlit dataframe (a canvas grid: 35 px rows under the header)."""
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 35 * (row + 1) + 17)


def test_query_table_sort_filter_open_and_back(server, page, run_dir):
    queries = [json.loads(line) for line in (run_dir / "queries.jsonl").read_text().splitlines()]
    factual = sorted((q for q in queries if q["task"] == "factual"), key=lambda q: -q["nats"])
    page.goto(f"{server}/queries")
    wait_until_rendered(page)
    expression = page.get_by_role("textbox", name="Filter expression")
    expression.fill('task == "factual"')
    expression.press("Enter")
    page.wait_for_function("() => window.location.href.includes('where=')", timeout=TIMEOUT)
    wait_until_rendered(page)
    page.get_by_role("switch", name="Descending").check(force=True)
    page.wait_for_function("() => window.location.href.includes('desc=true')", timeout=TIMEOUT)
    sort = page.locator("[data-testid=stSelectbox]", has_text="Sort by")
    sort.click()
    page.get_by_role("option", name="nats", exact=True).click()
    page.wait_for_function("() => window.location.href.includes('sort=nats')", timeout=TIMEOUT)
    wait_until_rendered(page)
    page.get_by_text(f"{factual[0]['id']} · task factual").wait_for(timeout=TIMEOUT)  # opened: the first row
    before, history = url(page), page.evaluate("() => history.length")
    click_table_row(page, page.locator("[data-testid=stDataFrame]").first, 1)
    page.wait_for_function(f"() => window.location.href.includes('q={factual[1]['id']}')", timeout=TIMEOUT)
    wait_until_rendered(page)
    assert page.evaluate("() => history.length") == history + 1  # one entry for one action
    page.get_by_text(f"{factual[1]['id']} · task factual").wait_for(timeout=TIMEOUT)  # the query's header
    page.go_back()
    page.wait_for_function(f"() => window.location.href === {before!r}", timeout=TIMEOUT)
    wait_until_rendered(page)
    page.get_by_text(f"{factual[0]['id']} · task factual").wait_for(timeout=TIMEOUT)  # the first filtered row again


def test_choosing_a_completion_span_marks_document_spans(server, page):
    page.goto(f"{server}/queries?q=q0005")
    wait_until_rendered(page)
    page.wait_for_selector("[data-testid=stButtonGroup] button", timeout=TIMEOUT)
    assert page.locator(".m-span-on[title]").count() == 0  # (the legend's sample has no title)
    page.locator("[data-testid=stButtonGroup] button").first.click()
    page.wait_for_function("() => window.location.href.includes('span=1')", timeout=TIMEOUT)
    page.wait_for_function("() => document.querySelectorAll('.m-span-on[title]').length >= 2", timeout=TIMEOUT)
    linked = page.locator(".m-span-on[title*='repeats completion span 1']")  # in the documents' text
    assert linked.count() >= 1


CELL_POSITION = """([column, row]) => {
  const plot = document.querySelector('.js-plotly-plot');
  const box = plot.querySelector('.draglayer .xy .nsewdrag').getBoundingClientRect();
  const layout = plot._fullLayout, trace = plot._fullData[0];
  return [box.left + layout.xaxis.l2p(column), box.top + layout.yaxis.l2p(row),
          trace.y[row] + ' × ' + trace.x[column], trace.z[row][column].toFixed(3)];
}"""


def test_clicking_a_heatmap_cell_shows_the_same_r_in_the_scatter(server, page):
    page.goto(f"{server}/correlations")
    wait_until_rendered(page)
    page.wait_for_selector(".js-plotly-plot", timeout=TIMEOUT)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y, names, hover_r = page.evaluate(CELL_POSITION, [2, 7])
    first, second = names.split(" × ")
    page.mouse.click(x, y)
    page.wait_for_function(f"() => window.location.href.includes('a={first}&b={second}')", timeout=TIMEOUT)
    wait_until_rendered(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=TIMEOUT)
    title = page.evaluate("() => document.querySelectorAll('.js-plotly-plot')[1].layout.title.text")
    assert re.search(r"r = (-?[\d.]+) over all", title).group(1) == hover_r


def test_links_stay_in_the_tab_and_the_session(server, page):
    page.goto(f"{server}/queries?q=q0003")
    wait_until_rendered(page)
    page.wait_for_selector(".token-heatmap", timeout=TIMEOUT)
    page.evaluate("() => { window.sameDocument = true; }")  # gone if the link reloaded the page
    card_link = page.locator("[data-testid=stMain] [data-testid=stPageLink] a", has_text="document ").first
    doc_id = card_link.get_attribute("href").split("doc=")[1].split("&")[0]
    card_link.click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Documents'", timeout=TIMEOUT)
    page.wait_for_selector(".js-plotly-plot", timeout=TIMEOUT)
    assert page.get_by_role("textbox", name="Document id").input_value() == doc_id
    assert f"doc={doc_id}" in url(page) and page.evaluate("() => window.sameDocument") is True
    assert len(page.context.pages) == 1
    page.go_back()  # back to the query it came from
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Queries'", timeout=TIMEOUT)
    page.get_by_text("q0003 · task").wait_for(timeout=TIMEOUT)


def test_the_chosen_run_stays_when_moving_between_pages(server, page, second_run_dir):
    page.goto(f"{server}/magnitude?run={second_run_dir}")
    wait_until_rendered(page)
    page.locator("[data-testid=stSidebar] [data-testid=stPageLink] a", has_text="Sources").first.click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Sources'", timeout=TIMEOUT)
    wait_until_rendered(page)
    assert parse_qs(urlparse(url(page)).query)["run"] == [str(second_run_dir)]


def test_a_source_bar_lists_documents_that_open_in_the_tab(server, page):
    page.goto(f"{server}/sources")
    wait_until_rendered(page)
    page.wait_for_selector(".js-plotly-plot .bars path", state="attached", timeout=TIMEOUT)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate("""() => {
      const bars = [...document.querySelectorAll('.js-plotly-plot .bars path')];
      const box = bars.map(bar => bar.getBoundingClientRect()).sort((a, b) => b.height - a.height)[0];
      return [box.left + box.width / 2, box.top + box.height / 2];
    }""")
    page.mouse.click(x, y)
    page.wait_for_function("() => window.location.href.includes('source=')", timeout=TIMEOUT)
    wait_until_rendered(page)
    page.evaluate("() => { window.sameDocument = true; }")
    click_table_row(page, page.locator("[data-testid=stDataFrame]").last, 0)
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Documents'", timeout=TIMEOUT)
    assert "doc=" in url(page) and page.evaluate("() => window.sameDocument") is True


def test_downloads_produce_files(server, page, tmp_path):
    page.goto(f"{server}/magnitude")
    wait_until_rendered(page)
    page.wait_for_selector(".js-plotly-plot", timeout=TIMEOUT)
    for label, suffix, magic in (("CSV", ".csv", b"task"), ("SVG", ".svg", b"<svg"), ("PNG", ".png", b"\x89PNG"),
                                 ("HTML", ".html", b"<html")):
        button = page.locator("[data-testid=stDownloadButton] button", has_text=label).first
        button.evaluate("element => element.scrollIntoView({block: 'center'})")  # clear of the sticky header
        with page.expect_download(timeout=120_000) as download_info:
            button.click()
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert saved.suffix == suffix and saved.stat().st_size > 100
        assert magic in saved.read_bytes()[:400]


def test_no_request_left_the_machine(server):
    assert REQUESTS, "no request was recorded"
    outside = [r for r in REQUESTS if not re.match(r"(https?|wss?)://127\.0\.0\.1[:/]", r)
               and not r.startswith(("data:", "blob:"))]
    assert not outside, outside[:10]
