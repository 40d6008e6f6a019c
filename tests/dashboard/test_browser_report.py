"""Real browser: save a query set on the Queries page and see its findings (table and forest plot); export the
report, open it from disk with every request recorded and any to a host refused, and see the forest plot drawn.
(A copy of the synthetic run, so the query-sets file it writes does not reach the other tests.)"""
from __future__ import annotations

import shutil
from urllib.parse import quote

import pytest

from dashboard import report
from precompute.rundir import query_sets
from tests.dashboard.serve import dashboard_server
from tests.dashboard.test_browser import CHROMIUM, SCREENSHOTS, TIMEOUT, wait_until_rendered

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SET_NAME = "factual and slopes, informative"
FINDINGS = "[data-testid=stExpander]:has-text('Findings on the query set')"


@pytest.fixture(scope="module")
def sets_run(run_dir, tmp_path_factory):
    return shutil.copytree(run_dir, tmp_path_factory.mktemp("sets") / "run")


def save_a_set(page, server) -> None:
    page.goto(f"{server}/queries?where=" + quote('task in ["factual", "slopes"] and nats > 1'))
    wait_until_rendered(page)
    name = page.get_by_label("Save the table's filter as a query set")
    name.fill(SET_NAME)
    name.press("Enter")
    wait_until_rendered(page)
    page.get_by_role("button", name="Save set").click()
    page.wait_for_selector(f"{FINDINGS} .js-plotly-plot .main-svg", timeout=TIMEOUT)
    wait_until_rendered(page)


def open_offline(browser, path):
    """The report opened from disk; returns (page, every request it made)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else route.abort())
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#forest-plot .main-svg .point", state="attached", timeout=TIMEOUT)
    return page, requests


def test_save_a_set_see_its_findings_export_the_report_and_open_it_offline(sets_run, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")
    from playwright.sync_api import sync_playwright

    with dashboard_server([sets_run]) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
        save_a_set(page, server)
        assert [s.name for s in query_sets.read_query_sets(sets_run).sets] == [SET_NAME]
        assert "set=factual" in page.evaluate("() => window.location.href")
        findings = page.locator(FINDINGS)
        assert findings.locator("[data-testid=stDataFrame]").count() >= 1
        if SCREENSHOTS:
            page.screenshot(path=str(SCREENSHOTS / "queries_set_findings.png"), full_page=True)
        button = findings.get_by_role("button", name="Export report", exact=True)
        button.evaluate("element => element.scrollIntoView({block: 'center'})")
        with page.expect_download(timeout=120_000) as download_info:
            button.click()
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        numbers = report.embedded_numbers(saved.read_text(encoding="utf-8"))
        assert numbers["settings"]["query_set"]["name"] == SET_NAME

        offline, requests = open_offline(browser, saved)
        drawn = offline.evaluate("() => document.getElementById('forest-plot').data.map(t => t.x.length)")
        assert sum(drawn) == len(numbers["findings"]["findings"])
        if SCREENSHOTS:
            offline.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
        outside = [url for url in requests if not url.startswith(("file:", "data:", "blob:"))]
        assert not outside, outside[:10]
        browser.close()
