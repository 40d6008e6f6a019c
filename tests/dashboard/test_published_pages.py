"""Imported runs (`precompute import-published`) in the dashboard: every page opens, the query cards show each
document's rank among the paper's ~5M documents, the overview says what the sample is, and compare lines up
the 7B and 35B imports by prompt. Synthetic files of the same format always; the real files when present."""
import json

import numpy as np
import pytest

from dashboard.pages import PAGE_SPECS
from precompute.published.importer import import_published
from precompute.published.format import normalised_prompt
from tests.dashboard.test_pages import assert_clean, open_page
from tests.published_files import make_published, real_files_present, write_published

PAGES = [spec[0] for spec in PAGE_SPECS]


@pytest.fixture(scope="module")
def imported_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imported")
    runs = {}
    for model, seed in (("7B", 0), ("35B", 1)):
        path = write_published(folder / f"file_{model}.json", model, seed=seed)
        runs[model] = import_published(str(path), str(folder / f"ruis-{model.lower()}"), progress=False).path
    return runs


def queries_of(run) -> list[dict]:
    return [json.loads(line) for line in open(f"{run}/queries.jsonl")]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_an_imported_run(page, app_args, imported_runs):
    app_args(imported_runs["7B"], imported_runs["35B"])
    at = open_page(page)
    assert_clean(at)
    assert at.title


def test_query_cards_show_the_corpus_rank(app_args, imported_runs):
    content, _ = make_published("7B")
    row = 41
    query_id = queries_of(imported_runs["7B"])[row]["id"]
    app_args(imported_runs["7B"])
    at = open_page("queries", q=query_id, k="3")
    assert_clean(at)
    dot, ranks = np.asarray(content["influences_dot"][row]), np.asarray(content["ranks"][row])
    best = int(np.argmax(dot))
    expected = f"rank {int(ranks[best]) + 1:,} of ~5M"
    heads = [m.value for m in at.markdown if m.value.startswith("**#1**")]
    assert any(expected.replace("~", "\\~") in head for head in heads), heads
    normalised = by_key(at.radio, "queries.score").set_value("gradient-normalised").run()
    best_cos = int(np.argmax(content["influences_cos"][row]))
    expected_cos = f"rank {int(content['ranks_normed'][row][best_cos]) + 1:,} of ~5M".replace("~", "\\~")
    assert any(expected_cos in m.value for m in normalised.markdown if m.value.startswith("**#1**"))


def by_key(elements, key):
    return next(e for e in elements if e.key == key)


def test_ask_page_says_it_needs_the_model(app_args, imported_runs):
    app_args(imported_runs["7B"])
    at = open_page("ask")
    assert_clean(at)
    assert any("needs the model" in i.value and "Command R 7B" in i.value for i in at.info)
    assert not at.text_area    # no question form


def test_overview_says_what_the_sample_is(app_args, imported_runs):
    app_args(imported_runs["7B"])
    at = open_page("overview")
    notes = " ".join(i.value for i in at.info)
    assert "Imported, not computed here" in notes and "8 documents the paper published out of the ~5M" in notes
    assert at.metric[0].label == "Model (imported)" and at.metric[0].value == "Command R 7B"   # never "None"


def test_magnitude_opens_on_a_scale_the_import_defines(app_args, imported_runs):
    app_args(imported_runs["7B"])
    at = open_page("magnitude")
    assert_clean(at)
    assert at.radio(key="magnitude.scale").value == "relative"     # no nats in an import: no per-nat curve
    assert len(at.get("plotly_chart")) == 2                         # the curves and the slopes, no empty scatter
    at.radio(key="magnitude.scale").set_value("per nat").run()
    assert "No task has a per nat value in this run" in " ".join(i.value for i in at.info)


def test_compare_matches_the_two_imports_by_prompt(app_args, imported_runs):
    app_args(imported_runs["7B"], imported_runs["35B"])
    at = open_page("compare", k="10")
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "share 60 queries and 8 documents" in captions and "same questions asked of both models" in captions
    table = next(frame.value for frame in at.dataframe if "pearson" in frame.value.columns and "query_id" in
                 frame.value.columns)
    a, b = make_published("7B")[0], make_published("35B", seed=1)[0]
    rows_b = {normalised_prompt(p): i for i, p in enumerate(b["prompts"])}
    ids = {q["id"]: i for i, q in enumerate(queries_of(imported_runs["7B"]))}
    assert len(table) == 60
    for query_id, pearson in zip(table["query_id"], table["pearson"]):
        row_a = ids[query_id]
        row_b = rows_b[normalised_prompt(a["prompts"][row_a])]
        expected = np.corrcoef(a["influences_dot"][row_a], b["influences_dot"][row_b])[0, 1]
        assert pearson == pytest.approx(expected, abs=1e-5)


@pytest.mark.browser
def test_queries_page_of_an_imported_run_in_a_browser(imported_runs):
    from tests.dashboard.serve import dashboard_server
    from tests.dashboard.test_browser import CHROMIUM, wait_until_rendered
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")
    from playwright.sync_api import sync_playwright

    query_id = queries_of(imported_runs["7B"])[60]["id"]
    with dashboard_server([imported_runs["7B"]]) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/queries?q={query_id}")
        wait_until_rendered(page)
        page.wait_for_function("() => document.body.innerText.includes('of ~5M')", timeout=60_000)
        assert page.locator(".stException").count() == 0
        browser.close()


real = pytest.mark.skipif(not real_files_present(), reason="the published files are not in ../shared/ruis")


@pytest.fixture(scope="module")
def real_runs(real_imports):
    """The session's imports of the published files, as runs ruis-7b and ruis-35b (tests/conftest.py)."""
    return real_imports


@real
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_the_real_imports(page, app_args, real_runs):
    app_args(real_runs["7B"], real_runs["35B"])
    at = open_page(page)
    assert_clean(at)


@real
def test_real_compare_shows_37_shared_questions(app_args, real_runs):
    app_args(real_runs["7B"], real_runs["35B"])
    at = open_page("compare", k="10")
    assert_clean(at)
    assert "share 37 queries and 80 documents" in " ".join(c.value for c in at.caption)


@real
def test_real_7b_query_cards_parse_the_final_answer(app_args, real_runs):
    """slope-033134's completion ends "... is -" after "m = -1": the model's answer is -1, not a coordinate; a
    factual query has no reference answer, so it reads "unknown", never "incorrect"."""
    app_args(real_runs["7B"])
    factual = next(q["id"] for q in queries_of(real_runs["7B"]) if q["task"] == "factual")
    for query_id, expected in (("slope-033134", "model's answer **-1**, reference **6**"),
                               (factual, "gray-badge[unknown]")):
        at = open_page("queries", q=query_id, k="3")
        assert_clean(at)
        header = next(m.value for m in at.markdown if m.value.startswith(f"**{query_id}**"))
        assert expected in header and "completion loss unknown" in header, header


@real
@pytest.mark.browser
def test_real_7b_in_a_browser_answers_filter_csv_and_compare(real_runs, run_dir, tmp_path):
    """Issue 21's browser checks on the paper's 7B file, one server: slope-033134 shows its parsed final answer;
    a filter opens its first row (a factual query: "unknown", never "incorrect"); a CSV downloads with numeric
    columns and no factual query marked incorrect; Compare defaults to the run sharing queries (35B, not the
    synthetic run offered before it)."""
    import urllib.parse

    import pandas as pd

    from tests.dashboard.serve import dashboard_server
    from tests.dashboard.test_browser import CHROMIUM, TIMEOUT, wait_until_rendered
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")
    from playwright.sync_api import sync_playwright

    seven = str(real_runs["7B"])
    factual = sorted(q["id"] for q in queries_of(seven) if q["task"] == "factual")
    with dashboard_server([run_dir, seven, real_runs["35B"]]) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)

        def open_path(path: str, **params) -> None:
            page.goto(f"{url}/{path}?{urllib.parse.urlencode({'run': seven, **params})}")
            wait_until_rendered(page)
            assert page.locator(".stException").count() == 0, path

        def header(query_id: str) -> str:
            found = page.locator("[data-testid=stMarkdown]", has_text=f"{query_id} · task").first
            found.wait_for(timeout=TIMEOUT)
            return found.inner_text()

        open_path("queries", q="slope-033134")
        assert "model's answer -1, reference 6" in header("slope-033134")
        open_path("queries")
        expression = page.get_by_role("textbox", name="Filter expression")
        expression.fill('task == "factual"')
        expression.press("Enter")
        page.wait_for_function("() => window.location.href.includes('where=')", timeout=TIMEOUT)
        wait_until_rendered(page)
        opened = header(factual[0])                     # the filter's first row is the opened query
        assert "unknown" in opened and "incorrect" not in opened, opened

        open_path("documents", doc=pd.read_parquet(f"{seven}/documents.parquet", columns=["id"])["id"].iloc[0])
        button = page.locator("[data-testid=stDownloadButton] button", has_text="CSV").first
        button.evaluate("element => element.scrollIntoView({block: 'center'})")
        with page.expect_download(timeout=TIMEOUT) as download_info:
            button.click()
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        table = pd.read_csv(saved)
        assert len(table) == 100 and table["raw_score"].dtype.kind == "f" and table.iloc[:, -2].dtype.kind == "f"
        assert set(table.loc[table["task"] == "factual", "correct"]) == {"unknown"}
        assert table.set_index("query_id").loc["slope-033134", "correct"] == "incorrect"   # -1, reference 6

        open_path("compare")
        caption = page.locator("[data-testid=stCaptionContainer]", has_text="share 37 queries").first
        caption.wait_for(timeout=TIMEOUT)        # "This run ruis-7b (…) … and ruis-35b (…) share 37 queries …"
        assert "and ruis-35b" in caption.inner_text(), caption.inner_text()
        browser.close()
