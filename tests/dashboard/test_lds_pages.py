"""The LDS leaderboard on the overview, the measured-vs-predicted scatter on the queries page and both runs'
leaderboards on compare show the run's own numbers, on a tiny model run made by `precompute run --strategy
identity` + `precompute counterfactual` (4 sets; built once for the module, hence slow)."""
import base64
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dashboard.lds_view import HOW_TO
from tests.dashboard.test_pages import assert_clean, by_key, exported_tables, open_page  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def lds_run(counterfactual_run):
    """The session's tiny EK-FAC run with a 4-set counterfactual (its own method, ekfac/‖g_d‖, an identity run,
    identity/‖g_d‖ and BM25, 5 queries; tests/conftest.py)."""
    return counterfactual_run[0]


def plotted(values) -> list:
    """A trace's values from the chart's JSON (plotly writes numeric arrays as base64 `bdata`)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"nan|-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def chart_spec(at, title: str) -> dict:
    """The JSON of the page's chart whose spec contains `title`."""
    return next(json.loads(chart.proto.spec) for chart in at.get("plotly_chart") if title in chart.proto.spec)


@pytest.mark.slow
def test_overview_leaderboard_shows_the_table(app_args, lds_run, exported_tables):
    summary = pd.read_parquet(lds_run / "analysis" / "lds_summary.parquet")
    app_args(lds_run)
    at = open_page("overview")
    assert_clean(at)
    for task in ("all", "factual"):
        if task != "all":
            by_key(at.selectbox, "lds.task").set_value(task).run()
            assert_clean(at)
            assert at.query_params["lds_task"] == task
        expected = summary[summary["task"] == task].set_index("method")
        shown = next(frame.value for frame in at.dataframe if "LDS − identity" in frame.value.columns)
        assert sorted(shown["method"]) == sorted(expected.index)
        assert shown["LDS"].map(lambda t: numbers(t)[0]).is_monotonic_decreasing
        for _, row in shown.iterrows():   # the screen's numbers, to its 3 significant digits
            want = expected.loc[row["method"], ["lds_mean", "lds_low", "lds_high"]].to_numpy(float)
            np.testing.assert_allclose(numbers(row["LDS"]), want, rtol=5e-3, atol=1e-12)   # NaN where NaN
            if row["method"] != "identity":
                want = expected.loc[row["method"], ["minus_identity", "minus_identity_low", "minus_identity_high"]]
                np.testing.assert_allclose(numbers(row["LDS − identity"]), want.to_numpy(float), rtol=5e-3,
                                           atol=1e-12)
        export = [frame for name, frame in exported_tables if name == f"lds_leaderboard_{task}"][-1]
        for method, row in export.set_index("method").iterrows():   # the CSV: the table's numbers exactly
            assert row["LDS"] == expected.loc[method, "lds_mean"]
            assert row["queries"] == expected.loc[method, "n_queries"]
    spec = chart_spec(at, "LDS per ranking")
    drawn = dict(zip(plotted(spec["data"][0]["y"]), plotted(spec["data"][0]["x"])))
    assert drawn == pytest.approx(expected["lds_mean"].to_dict())
    assert any("ε = " in caption.value and "PBRF solve" in caption.value for caption in at.caption)


@pytest.mark.slow
def test_queries_page_scatter_has_the_query_spearman(app_args, lds_run):
    frame = pd.read_parquet(lds_run / "analysis" / "counterfactual.parquet")
    per_query = pd.read_parquet(lds_run / "analysis" / "lds_queries.parquet").set_index(["query_id", "method"])
    query = per_query.xs("bm25", level="method")["lds"].dropna().index[0]   # BM25 is constant on some queries
    app_args(lds_run)
    at = open_page("queries", q=query)
    assert_clean(at)
    assert by_key(at.selectbox, "queries.lds_method").value == "ekfac"          # the run's own strategy
    for method in ("ekfac", "bm25"):
        if method != "ekfac":
            by_key(at.selectbox, "queries.lds_method").set_value(method).run()
            assert_clean(at)
            assert at.query_params["lds_method"] == method
        spec = chart_spec(at, "Spearman (LDS)")
        rows = frame[(frame["query_id"] == query) & (frame["method"] == method)].sort_values("set")
        assert plotted(spec["data"][0]["x"]) == pytest.approx(rows["predicted"].tolist())
        assert plotted(spec["data"][0]["y"]) == pytest.approx(rows["measured"].tolist())
        rho = stats.spearmanr(rows["predicted"], rows["measured"]).statistic
        assert per_query.loc[(query, method), "lds"] == pytest.approx(rho)
        assert f"Spearman (LDS) = {rho:.3f}" in spec["layout"]["title"]["text"]


@pytest.mark.slow
def test_compare_shows_both_leaderboards(app_args, lds_run, tmp_path):
    copy = shutil.copytree(lds_run, tmp_path / "copy", ignore=shutil.ignore_patterns(".lock"))
    app_args(lds_run, copy)
    at = open_page("compare")
    assert_clean(at)
    boards = [frame.value for frame in at.dataframe if "LDS − identity" in frame.value.columns]
    assert len(boards) == 2
    pd.testing.assert_frame_equal(boards[0], boards[1])
    without = shutil.copytree(lds_run, tmp_path / "without", ignore=shutil.ignore_patterns(".lock", "lds_*"))
    app_args(lds_run, without)                              # the second run has none: one line instead
    at = open_page("compare")
    assert_clean(at)
    assert not any("LDS − identity" in frame.value.columns for frame in at.dataframe)
    assert any(HOW_TO in caption.value for caption in at.caption)


@pytest.mark.slow
def test_the_exported_report_holds_the_leaderboard(lds_run):
    from dashboard import report

    page, _ = report.export(str(lds_run))
    numbers = report.embedded_numbers(page)
    summary = pd.read_parquet(lds_run / "analysis" / "lds_summary.parquet")
    assert len(numbers["tables"]["lds_summary"]) == len(summary) > 0
    assert [row["lds_mean"] for row in numbers["tables"]["lds_summary"]] == pytest.approx(
        summary["lds_mean"].tolist(), nan_ok=True)
    assert "Ranking-method leaderboard" in page and "id=\"lds-intervals\"" in page
    for method in summary["method"].unique():
        assert f"<td>{method}</td>" in page
