"""Every page through streamlit.testing.v1.AppTest: URL parameters in, widgets driven, state back in the URL."""
import json
import os
import re
import shutil
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import widgets
from precompute.analysis.ranking import top_and_bottom
from tests.dashboard.conftest import APP

PAGES = ["overview", "queries", "correlations", "magnitude", "sources", "answers", "documents", "compare"]


def open_page(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def by_key(elements, key):
    return next(e for e in elements if e.key == key)


FORMATTED_NUMBER = re.compile(r"^\s*[-+]?\d[\d.,]*%?\s*(?:\[|±)")   # "0.039 [0.031, 0.0476]", "100% [..]"


@pytest.fixture
def exported_tables(monkeypatch):
    """(name, frame) of every table whose CSV a page offers, recorded on the way into the real widgets.table."""
    recorded, real = [], widgets.table

    def recording(frame, key, name, opens=None, export=None, **dataframe_args):
        recorded.append((name, frame if export is None else export))
        return real(frame, key, name, opens=opens, export=export, **dataframe_args)

    monkeypatch.setattr(widgets, "table", recording)
    return recorded


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exceptions(page, app_args, run_dir, exported_tables):
    app_args(run_dir)
    at = open_page(page)
    assert_clean(at)
    for name, frame in exported_tables:   # CSV exports hold numbers, not numbers formatted as text
        for column in frame.columns[frame.dtypes == object]:
            formatted = frame[column].astype(str).str.match(FORMATTED_NUMBER)
            assert not formatted.any(), (name, column, frame[column][formatted].iloc[0])
    assert at.title[0].value.startswith(page.capitalize()[:5])
    if page != "compare":  # compare needs a second run
        assert len(at.get("plotly_chart")) >= 1


def test_overview_shows_counts_and_checks(app_args, run_dir):
    app_args(run_dir)
    at = open_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Queries"] == "24" and metrics["Documents"] == "3,000"
    assert "run" not in at.query_params  # the default run is not written into the URL


def test_links_carry_the_chosen_run(app_args, run_dir, second_run_dir):
    app_args(run_dir, second_run_dir)
    at = open_page("magnitude", run=str(second_run_dir))
    assert_clean(at)
    assert by_key(at.selectbox, "app.run").value == str(second_run_dir)
    links = [link for link in at.get("page_link")]
    assert len(links) >= 8
    assert all(parse_qs(link.proto.query_string)["run"] == [str(second_run_dir)] for link in links)


def test_sidebar_links_reopen_pages_as_they_were_left(app_args, run_dir):
    app_args(run_dir)
    at = open_page("queries", q="q0004", k="7")
    at.switch_page("views/magnitude.py")
    at.query_params.clear()  # Streamlit's page switch starts from a bare URL
    at.run()
    assert_clean(at)
    queries_link = next(link for link in at.get("page_link") if link.proto.label == "Queries")
    assert parse_qs(queries_link.proto.query_string) == {"q": ["q0004"], "k": ["7"]}


def test_queries_page_follows_url_and_switches(app_args, run_dir):
    app_args(run_dir)
    at = open_page("queries", q="q0003")
    assert_clean(at)
    assert by_key(at.selectbox, "queries.q").value == "q0003"
    cards_before = [m.value for m in at.markdown if "·" in m.value and "#1" in m.value]
    by_key(at.radio, "queries.score").set_value("gradient-normalised").run()
    by_key(at.slider, "queries.k").set_value(3).run()
    assert_clean(at)
    assert at.query_params["score"] == "gradient-normalised" and at.query_params["k"] == "3"
    assert at.query_params["q"] == "q0003" and cards_before
    by_key(at.selectbox, "queries.task").set_value("factual").run()
    assert_clean(at)
    assert at.query_params["task"] == "factual"
    assert set(at.dataframe[0].value["task"]) == {"factual"}
    by_key(at.text_input, "queries.search").input("capital").run()
    assert_clean(at)
    assert by_key(at.selectbox, "queries.q").value == "q0003"  # filters narrow the table, not the open query
    by_key(at.radio, "queries.score").set_value("raw").run()
    assert "score" not in at.query_params  # defaults stay out of the URL


def test_the_opened_query_agrees_with_the_filtered_table(app_args, run_dir):
    """Without a chosen query the first filtered row opens; a chosen one outside the filter says so."""
    app_args(run_dir)
    at = open_page("queries")
    tasks = at.dataframe[0].value["task"]
    task = sorted(set(tasks))[-1]
    by_key(at.selectbox, "queries.task").set_value(task).run()
    assert_clean(at)
    listed = at.dataframe[0].value
    assert set(listed["task"]) == {task} and by_key(at.selectbox, "queries.q").value == listed["id"].iloc[0]
    assert "q" not in at.query_params and not at.info
    outside, other_task = listed["id"].iloc[0], sorted(set(tasks))[0]
    assert other_task != task
    other = open_page("queries", task=other_task, q=outside)
    assert by_key(other.selectbox, "queries.q").value == outside
    assert any(f"opened query {outside} is outside the filter" in i.value for i in other.info)


def test_cards_without_token_scores_are_named(app_args, run_dir):
    """The synthetic run has token scores for each query's raw top and bottom 50: every raw card has its heatmap;
    a gradient-normalised ranking shows other documents too, and the page says which cards lack them."""
    app_args(run_dir)
    at = open_page("queries", q="q0003", k="50")
    assert_clean(at)
    assert not [c for c in at.caption if "Per-token scores were computed" in c.value]
    assert sum("token-heatmap" in m.value for m in at.markdown) == 100
    at.query_params["score"] = "gradient-normalised"
    at.run()
    assert_clean(at)
    row = [q["id"] for q in map(json.loads, (run_dir / "queries.jsonl").read_text().splitlines())].index("q0003")
    raw, normalised = np.load(run_dir / "scores.npy")[row], np.load(run_dir / "normalized_scores.npy")[row]
    missing = sum(len(set(shown) - set(tokens)) for shown, tokens in zip(top_and_bottom(normalised, 50),
                                                                           top_and_bottom(raw, 50)))
    note = next(c.value for c in at.caption if "Per-token scores were computed" in c.value)
    assert missing > 0 and "top and bottom 50 documents" in note and f"{missing} of the 100 cards" in note
    assert sum("token-heatmap" in m.value for m in at.markdown) == 100 - missing


def test_query_table_filters_by_correctness_and_expression(app_args, run_dir):
    app_args(run_dir)
    at = open_page("queries", where="nats > 2.5", sort="nats", desc="true")
    assert_clean(at)
    listed = at.dataframe[0].value
    assert len(listed) > 0 and (listed["nats"] > 2.5).all() and listed["nats"].is_monotonic_decreasing
    by_key(at.selectbox, "queries.correct").set_value("correct").run()
    assert_clean(at)
    assert at.dataframe[0].value["correct"].map(lambda v: v is True).all()
    by_key(at.text_input, "queries.where").input("nats >").run()
    assert any("Filter expression" in e.value for e in at.error)


def test_unknown_ids_in_the_url_are_named_on_the_page(app_args, run_dir):
    app_args(run_dir)
    at = open_page("queries", q="no-such-query", score="weird")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "no-such-query" in warnings and "weird" in warnings
    assert by_key(at.selectbox, "queries.q").value == "q0000"
    assert "q" not in at.query_params  # the unknown value is not kept


def test_the_url_decides_when_it_changes_from_outside(app_args, run_dir):
    """Back / Forward and followed links change the URL without the session writing it: the view follows."""
    app_args(run_dir)
    at = open_page("queries", q="q0002")
    by_key(at.slider, "queries.k").set_value(4).run()
    assert dict(at.query_params) == {"q": "q0002", "k": "4"}
    at.query_params.clear()
    at.query_params["q"] = "q0005"  # as after Back to an entry that had only ?q=q0005
    at.run()
    assert_clean(at)
    assert by_key(at.selectbox, "queries.q").value == "q0005" and by_key(at.slider, "queries.k").value == 5


def test_markup_in_runs_is_shown_as_text(app_args, run_dir):
    app_args(run_dir)
    at = open_page("queries", q="q0000")
    assert_clean(at)
    rendered = "\n".join(m.value for m in at.markdown)
    assert "<script>" not in rendered and "<img src=x" not in rendered
    assert "&lt;script&gt;alert(3)" in rendered  # the prompt
    assert "&lt;script&gt;alert(4)" in rendered  # the planted tokens in the heatmap
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered  # the full text under the card


def test_correlations_scatter_waits_for_a_pair(app_args, run_dir):
    app_args(run_dir)
    at = open_page("correlations")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2 and by_key(at.selectbox, "correlations.a").value is None
    by_key(at.selectbox, "correlations.a").set_value("q0001").run()
    by_key(at.selectbox, "correlations.b").set_value("q0002").run()
    assert len(at.get("plotly_chart")) == 3 and at.query_params["a"] == "q0001"  # + the pair's scatter


def test_correlations_pair_from_url(app_args, run_dir):
    app_args(run_dir)
    at = open_page("correlations", a="q0002", b="q0005")
    assert_clean(at)
    assert by_key(at.selectbox, "correlations.a").value == "q0002"
    by_key(at.selectbox, "correlations.b").set_value("q0007").run()
    assert_clean(at)
    assert at.query_params["b"] == "q0007"
    assert len(at.get("plotly_chart")) == 3  # heatmap, the pair's scatter, the task matrix


def test_magnitude_toggles(app_args, run_dir):
    app_args(run_dir)
    at = open_page("magnitude", sign="negative")
    assert by_key(at.radio, "magnitude.sign").value == "negative"
    by_key(at.radio, "magnitude.scale").set_value("absolute").run()
    by_key(at.toggle, "magnitude.log").set_value(False).run()
    assert_clean(at)
    assert at.query_params["scale"] == "absolute" and at.query_params["log"] == "false"  # log y is the default


def test_sources_documents_behind_a_bar(app_args, run_dir):
    app_args(run_dir)
    at = open_page("sources", task="factual", side="bottom")
    assert_clean(at)
    assert by_key(at.selectbox, "sources.task").value == "factual"
    assert at.dataframe[0].value["k"].max() < 3000  # no k = corpus size (×1 by definition)
    by_key(at.selectbox, "sources.k").set_value(500).run()
    assert_clean(at)
    listing = at.dataframe[1].value
    assert len(listing) > 0 and (listing["queries_ranking_it"] > 0).all() and listing["text"].str.len().gt(0).all()


def test_answers_per_query_and_documents(app_args, run_dir):
    app_args(run_dir)
    at = open_page("answers", k="100", q="q0001")
    assert_clean(at)
    assert by_key(at.selectbox, "answers.q").value == "q0001"
    found = at.dataframe[1].value
    assert found["target"].str.fullmatch(r"answer|answer_in_context|step_\d+").all() and len(found) > 0


def test_documents_page_by_url_search_and_similar(app_args, run_dir):
    app_args(run_dir)
    at = open_page("documents", doc="doc-0000010")
    assert_clean(at)
    assert by_key(at.text_input, "documents.doc").value == "doc-0000010"
    similar = at.dataframe[-1].value  # tables: the document's queries, then its most similar documents
    assert len(similar) == 10 and "doc-0000010" not in set(similar["doc_id"])
    assert similar["cosine"].is_monotonic_decreasing
    by_key(at.text_input, "documents.search").input("capital").run()
    assert_clean(at)
    results = at.dataframe[0].value  # the search results come first
    assert len(results) > 0 and results["text"].str.contains("capital", case=False).all()
    by_key(at.radio, "documents.scale").set_value("rank percentile within the query").run()
    assert_clean(at)
    percentiles = at.dataframe[1].value["rank percentile within the query (%)"]
    assert percentiles.between(0, 100).all()
    by_key(at.text_input, "documents.doc").input("no-such-doc").run()
    assert "No document with id" in at.warning[0].value


def test_compare_two_runs(app_args, run_dir, second_run_dir):
    app_args(run_dir, second_run_dir)
    at = open_page("compare", k="50")
    assert_clean(at)
    assert by_key(at.selectbox, "compare.run2").value == str(second_run_dir)
    by_task, table = at.dataframe[0].value, at.dataframe[1].value
    assert len(table) == 20 and table["pearson"].between(-1, 1).all() and "top_50_overlap" in table
    assert by_task["queries"].sum() == 20
    by_key(at.selectbox, "compare.q").set_value("q0004").run()
    assert_clean(at)
    assert at.query_params["q"] == "q0004"
    top_a = at.dataframe[2].value
    assert list(top_a["rank"]) == list(range(1, 11)) and "rank_other_run" in top_a and "text" in top_a


def test_compare_itself_correlates_perfectly(app_args, run_dir, tmp_path):
    shutil.copytree(run_dir, tmp_path / "copy")
    app_args(run_dir, tmp_path / "copy")
    at = open_page("compare")
    table = at.dataframe[1].value
    assert (table["pearson"] > 0.999).all() and (table["top_100_overlap"] == 1.0).all()
    top_a = at.dataframe[2].value
    assert top_a["in_both_top"].all() and (top_a["rank_change"] == 0).all()
    frames = [frame.value for frame in at.dataframe]
    findings = next(frame for frame in frames if frame.shape[1] == 11)
    assert len(findings) > 0   # finding, then effect, low, high, n, verdict per run
    pd.testing.assert_frame_equal(findings.iloc[:, 1:6].set_axis(range(5), axis=1),
                                  findings.iloc[:, 6:11].set_axis(range(5), axis=1))
    differences = next(frame for frame in frames if "contrast [95% CI]" in frame)
    assert len(differences) > 0 and (differences["this run"] == differences["other run"]).all()
    assert (differences["verdict"] == "no difference shown").all()
    notes = differences["contrast [95% CI]"].str.extract(r"\((width 0|no interval)")[0]
    assert notes.notna().all() and (notes == "width 0").any()     # a degenerate or missing interval says why


def test_a_rewritten_run_is_read_again(app_args, tmp_path):
    from tests.dashboard.conftest import synth_run

    run = synth_run(tmp_path / "rewritten", queries=12, docs=800)
    app_args(run)
    at = open_page("overview")
    assert {m.label: m.value for m in at.metric}["Queries"] == "12"
    shutil.rmtree(run)
    synth_run(run, queries=8, docs=800)
    manifest = run / "manifest.json"
    os.utime(manifest, (manifest.stat().st_atime, manifest.stat().st_mtime + 5))
    at.run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Queries"] == "8"
