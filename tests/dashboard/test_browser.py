"""Real browser: `streamlit run` on a free port, Playwright (sync API) driving Debian's chromium.

Never downloads a browser: chromium comes from the system (`apt-get install -y chromium`)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.dashboard.serve import dashboard_server

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium")
PAGES = [("", "Overview"), ("queries?q=q0000", "Queries"), ("correlations", "Correlations"),
         ("magnitude", "Magnitude"), ("sources", "Sources"), ("answers", "Answers"),
         ("documents?doc=doc-0000010", "Documents"), ("compare", "Compare runs")]
SCREENSHOTS = Path(os.environ.get("DASHBOARD_SCREENSHOTS", "")) if os.environ.get("DASHBOARD_SCREENSHOTS") else None


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
        yield context.new_page()
        browser.close()


def wait_until_rendered(page) -> None:
    page.wait_for_selector("h1", timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def test_every_page_renders_charts(server, page, run_dir):
    for path, title in PAGES:
        page.goto(f"{server}/{path}")
        wait_until_rendered(page)
        assert page.locator("h1").first.inner_text().strip() == title
        assert page.locator(".stException").count() == 0, path
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        if SCREENSHOTS is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = title.lower().split()[0]
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=name != "queries")
        assert "run=" in page.evaluate("() => window.location.href")  # the run travels in the URL


def test_markup_in_documents_stays_text(server, page):
    page.goto(f"{server}/queries?q=q0000")
    wait_until_rendered(page)
    page.wait_for_selector(".token-heatmap", timeout=60_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert "<script>alert(3)</script>" in page.inner_text("body")
    assert page.locator("img[src=x]").count() == 0
    assert not dialogs


CELL_POSITION = """([column, row]) => {
  const plot = document.querySelector('.js-plotly-plot');
  const box = plot.querySelector('.draglayer .xy .nsewdrag').getBoundingClientRect();
  const layout = plot._fullLayout;
  return [box.left + layout.xaxis.d2p(column), box.top + layout.yaxis.d2p(row),
          plot.data[0].hovertext[row * (row + 1) / 2 + column]];
}"""


def test_clicking_a_heatmap_cell_selects_the_pair(server, page):
    page.goto(f"{server}/correlations")
    wait_until_rendered(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y, names = page.evaluate(CELL_POSITION, [2, 7])
    first, second = names.split(" × ")
    page.mouse.click(x, y)
    page.wait_for_function(f"() => window.location.href.includes('a={first}&b={second}')", timeout=60_000)


def test_links_carry_state_between_pages(server, page):
    page.goto(f"{server}/queries?q=q0003")
    wait_until_rendered(page)
    page.wait_for_selector(".token-heatmap", timeout=60_000)
    card_link = page.locator("[data-testid=stPageLink] a", has_text="document").first
    doc_id = card_link.get_attribute("href").split("doc=")[1].split("&")[0]
    card_link.click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Documents'", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    assert page.locator("[data-testid=stTextInput] input").nth(1).input_value() == doc_id
    assert f"doc={doc_id}" in page.evaluate("() => window.location.href")


def test_clicking_a_source_bar_lists_its_documents(server, page):
    page.goto(f"{server}/sources?task=factual")
    wait_until_rendered(page)
    page.wait_for_selector(".js-plotly-plot .bars path", state="attached", timeout=60_000)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate("""() => {
      const bars = [...document.querySelectorAll('.js-plotly-plot .bars path')];
      const box = bars.map(bar => bar.getBoundingClientRect()).sort((a, b) => b.height - a.height)[0];
      return [box.left + box.width / 2, box.top + box.height / 2];
    }""")
    before = page.evaluate("() => window.location.href")
    page.mouse.click(x, y)
    page.wait_for_function(f"() => window.location.href !== {before!r} && window.location.href.includes('source=')",
                           timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stDataFrame]').length >= 2",
                           timeout=60_000)


def test_downloads_produce_files(server, page, tmp_path):
    page.goto(f"{server}/magnitude")
    wait_until_rendered(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
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
