"""Queries page: distinctive terms, clusters filtering the cards, labels saved under the cards; Sources page: the
label breakdown; an invalid labels file shown as a message and kept. Through streamlit's AppTest."""
import json
import shutil

import pytest

from dashboard.themes_view import Themes
from precompute.rundir import labels as run_labels
from tests.dashboard.test_pages import assert_clean, by_key, open_page


@pytest.fixture
def own_run(run_dir, tmp_path):
    """A copy of the shared run: labels are written beside it."""
    return shutil.copytree(run_dir, tmp_path / "labelled")


def test_terms_clusters_and_a_label_on_the_queries_page(app_args, own_run):
    app_args(own_run)
    at = open_page("queries", q="q0003")
    assert_clean(at)
    assert any(chart.proto.spec and "ie-distinctive-terms" in chart.proto.spec for chart in at.get("plotly_chart"))
    by_key(at.selectbox, "queries.cluster").set_value("1")
    at.run()
    assert_clean(at)
    note = next(c.value for c in at.caption if c.value.startswith("Only cluster 1"))
    top_labels = [s for s in at.selectbox if s.key and s.key.startswith("labels.queries.top.")]
    assert 0 < len(top_labels) <= 5 and note
    doc_id = top_labels[0].key.rsplit(".", 1)[1]
    top_labels[0].set_value("states the answer")
    at.run()
    assert run_labels.read_labels(own_run).labels == {doc_id: "states the answer"}
    at = open_page("queries", q="q0003")            # a new session reads the file
    assert any(s.value == "states the answer" for s in at.selectbox if s.key and s.key.endswith(doc_id))
    at = open_page("sources", by="your_labels")
    assert_clean(at)
    assert "your_labels" in by_key(at.radio, "sources.by").options


def test_an_invalid_labels_file_is_shown_and_kept(app_args, own_run):
    broken = '{"format": 1, "label_set": ["a"], "labels": {"doc-0000001": "zzz"}}'
    (own_run / "labels.json").write_text(broken)
    app_args(own_run)
    for page in ("queries", "sources"):
        at = open_page(page)
        assert not at.exception
        assert any("Labels cannot be used" in e.value and "doc-0000001" in e.value for e in at.error)
    assert (own_run / "labels.json").read_text() == broken


def test_a_chosen_term_is_marked_where_it_occurs():
    marks = Themes(term="rise over run").marks("Rise  over run, then sunrise over run; rise over running")
    assert [(m.start, m.end, m.kind) for m in marks] == [(0, 14, "term")]
