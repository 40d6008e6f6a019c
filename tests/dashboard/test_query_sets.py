"""Saved query sets on the Queries page (dashboard/query_sets_view.py) through streamlit's AppTest: the table's
filter saved under a name, its findings recomputed, the set in the URL, a link alone reproducing it, an invalid
file shown and kept; and the one expression a set stores keeps the rows the table's filter widgets keep."""
import itertools
import json
import shutil

import pandas as pd
import pytest

from dashboard import query_table
from dashboard.query_filter import filter_rows
from dashboard.findings_view import findings_table
from precompute import rundir
from precompute.analysis import load_inputs
from precompute.analysis.query_subset import subset_findings
from precompute.rundir import query_sets
from tests.dashboard.test_pages import assert_clean, by_key, exported_tables, open_page  # noqa: F401 (fixture)


@pytest.fixture
def own_run(run_dir, tmp_path):
    """A copy of the shared run: query sets are written beside it."""
    return shutil.copytree(run_dir, tmp_path / "sets")


def test_one_expression_keeps_what_the_filter_widgets_keep(run_dir):
    queries = pd.read_json(run_dir / rundir.QUERIES, lines=True, dtype={"id": str})
    table = query_table.query_table(queries)
    tasks = [query_table.ALL, "factual", "slopes"]
    searches = ["", "q000", "the", 'it\'s "quoted"']
    expressions = ["", "nats > 2", 'task == "factual" or nats < 1']
    for task, correctness, search, expression in itertools.product(tasks, query_table.CORRECTNESS, searches,
                                                                   expressions):
        choices = dict(task=task, correctness=correctness, search=search, expression=expression)
        composed = query_table.filter_expression(**choices)
        assert filter_rows(table, composed)["id"].tolist() == query_table.filtered(table, **choices)["id"].tolist(), \
            (choices, composed)
    assert query_table.filter_expression(task="slopes", correctness="correct") == \
        "(task == 'slopes') and (correct == True)"


def _findings_rows(recorded, run):
    """The last findings table shown (open_page shows the overview, with the run's own, first)."""
    return [frame for name, frame in recorded if name == f"findings_{run.name}"][-1]


def test_save_a_set_see_its_findings_and_reopen_it_from_the_link(app_args, own_run, exported_tables):  # noqa: F811
    app_args(own_run)
    at = open_page("queries", where='task in ["factual", "slopes"] and nats > 1')
    by_key(at.text_input, "queries.set_name").set_value("factual and slopes, informative")
    by_key(at.button, "queries.set_save").click()
    at.run()
    assert_clean(at)
    saved = query_sets.read_query_sets(own_run)
    assert [(s.name, s.expression) for s in saved.sets] == [("factual and slopes, informative",
                                                             'task in ["factual", "slopes"] and nats > 1')]
    assert at.query_params["set"] == "factual and slopes, informative"
    assert at.query_params["set_where"] == 'task in ["factual", "slopes"] and nats > 1'
    queries = rundir.read_jsonl(str(own_run / rundir.QUERIES))
    chosen = [q["id"] for q in queries if q["task"] in ("factual", "slopes") and q["nats"] > 1]
    expected = findings_table(subset_findings(load_inputs(rundir.RunDir(str(own_run))), chosen)["findings"])[1]
    assert len(expected)
    pd.testing.assert_frame_equal(_findings_rows(exported_tables, own_run), expected)
    assert any(f"({len(chosen)} of {len(queries)} queries)" in e.label for e in at.expander)

    exported_tables.clear()                                   # a link alone, on a run without that set saved
    (own_run / rundir.QUERY_SETS).unlink()
    at = open_page("queries", set="shared", set_where='task in ["factual", "slopes"] and nats > 1')
    assert_clean(at)
    pd.testing.assert_frame_equal(_findings_rows(exported_tables, own_run), expected)


def test_an_invalid_sets_file_is_shown_and_kept(app_args, own_run):
    broken = json.dumps({"format": 1, "sets": [{"name": "a"}]})
    (own_run / rundir.QUERY_SETS).write_text(broken)
    app_args(own_run)
    at = open_page("queries")
    assert not at.exception
    assert any("Saved query sets cannot be used" in e.value and "item 0" in e.value for e in at.error)
    assert by_key(at.button, "queries.set_save").disabled
    assert (own_run / rundir.QUERY_SETS).read_text() == broken


def test_a_bad_set_filter_from_a_link_is_a_message(app_args, own_run):
    app_args(own_run)
    at = open_page("queries", set="bad", set_where="__import__('os')")
    assert not at.exception
    assert any("Query set bad" in e.value for e in at.error)


def test_choosing_a_saved_set_puts_its_filter_in_the_table_and_delete_removes_it(app_args, own_run):
    query_sets.save_query_set(own_run, "slopes, informative", 'task == "slopes" and nats > 1')
    app_args(own_run)
    at = open_page("queries", task="factual")
    by_key(at.selectbox, "queries.set").set_value("slopes, informative")
    at.run()
    assert_clean(at)
    assert by_key(at.text_input, "queries.where").value == 'task == "slopes" and nats > 1'
    assert by_key(at.selectbox, "queries.task").value == query_table.ALL
    assert at.query_params["where"] == 'task == "slopes" and nats > 1'
    by_key(at.button, "queries.set_delete").click()
    at.run()
    assert_clean(at)
    assert query_sets.read_query_sets(own_run).sets == ()
    assert "set" not in at.query_params


def test_a_set_without_any_finding_says_so(app_args, run_dir):
    app_args(run_dir)
    at = open_page("queries", set="factual only", set_where='task == "factual"')
    assert_clean(at)
    assert any("No finding can be computed on these queries alone" in i.value for i in at.info)
