"""Real browser: label three documents under their cards, reload, see the labels and the label breakdown.
(A copy of the synthetic run, so the labels file it writes does not reach the other tests.)"""
from __future__ import annotations

import shutil
import time

import pytest

from precompute.rundir import labels as run_labels
from tests.dashboard.serve import dashboard_server
from tests.dashboard.test_browser import CHROMIUM, TIMEOUT, wait_until_rendered

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LABEL = "teaches the procedure"
BUTTONS = "[data-testid=stMain] [data-testid=stPopover] button"        # "Label" / "Label: …" under each card
CHOICE = "[data-testid=stPopoverBody] [class*='st-key-labels-queries-top-'] [data-testid=stSelectbox]"


@pytest.fixture(scope="module")
def labelled_run(run_dir, tmp_path_factory):
    return shutil.copytree(run_dir, tmp_path_factory.mktemp("labels") / "run")


def wait_for_labels(run, n: int) -> dict:
    deadline = time.monotonic() + TIMEOUT / 1000
    while time.monotonic() < deadline:
        found = run_labels.read_labels(run).labels
        if len(found) >= n:
            return found
        time.sleep(0.2)
    raise AssertionError(f"labels.json holds {run_labels.read_labels(run).labels}, expected {n} labels")


def choose(page, button, label: str, tries: int = 4) -> None:
    """Open a card's label button and its select box and pick `label`; a click that lands while Streamlit
    re-renders opens nothing, so both are clicked again (up to `tries` times) until the option shows."""
    option = page.get_by_role("option", name=label, exact=True)
    for attempt in range(tries):
        button.scroll_into_view_if_needed()
        button.click()
        select = page.locator(CHOICE).first
        try:
            select.wait_for(state="visible", timeout=TIMEOUT // tries)
            select.click()
            option.wait_for(state="visible", timeout=TIMEOUT // tries)
            break
        except Exception:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
            wait_until_rendered(page)
    option.click()


def test_label_three_documents_reload_and_see_the_breakdown(labelled_run):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")
    from playwright.sync_api import sync_playwright

    with dashboard_server([labelled_run]) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(f"{server}/queries?q=q0003")
        wait_until_rendered(page)
        page.wait_for_selector(BUTTONS, timeout=TIMEOUT)
        for n in range(3):
            choose(page, page.locator(BUTTONS).nth(n), LABEL)
            labelled = wait_for_labels(labelled_run, n + 1)
            page.keyboard.press("Escape")
            wait_until_rendered(page)
        assert set(labelled.values()) == {LABEL}
        page.reload()
        wait_until_rendered(page)
        page.wait_for_selector(BUTTONS, timeout=TIMEOUT)
        shown = [page.locator(BUTTONS).nth(n).inner_text() for n in range(4)]
        assert all(f"Label: {LABEL}" in text for text in shown[:3]) and LABEL not in shown[3], shown
        page.goto(f"{server}/sources?by=your_labels")
        wait_until_rendered(page)
        page.wait_for_selector(".js-plotly-plot .bars path", state="attached", timeout=TIMEOUT)
        titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.layout.title.text)")
        assert any("Your_labels share among" in title for title in titles), titles
        bars = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(t => t.x || [])")
        assert any(LABEL in list(x) for x in bars)
        page.get_by_text("Your labels").first.wait_for(timeout=TIMEOUT)
        browser.close()
