"""The LDS leaderboard, its interval chart and the per-query measured-vs-predicted scatter carry the tables' numbers
(pure functions on hand-made tables); a run without a counterfactual says how to compute one. The pages on a real
counterfactual run: test_lds_pages.py."""
import io
import math

import numpy as np
import pandas as pd
import pytest

from dashboard.lds_view import HOW_TO, interval_figure, leaderboard, leaderboard_display, query_figure
from tests.dashboard.test_pages import assert_clean, open_page

SUMMARY = pd.DataFrame(
    [("ekfac", "all", 8, 0.44, 0.30, 0.55, 0.31, 0.20, 0.41),
     ("identity", "all", 8, 0.13, 0.02, 0.25) + (math.nan,) * 3,
     ("bm25", "all", 6, 0.22, 0.05, 0.37, 0.09, -0.10, 0.27), ("ekfac", "slope", 4, 0.5, 0.2, 0.7, 0.2, 0.0, 0.4),
     ("identity", "slope", 4, 0.3, 0.1, 0.5) + (math.nan,) * 3, ("bm25", "slope", 3, 0.6, 0.3, 0.8, 0.3, 0.1, 0.5)],
    columns=["method", "task", "n_queries", "lds_mean", "lds_low", "lds_high", "minus_identity",
             "minus_identity_low", "minus_identity_high"]).assign(n_sets=32)
VALIDATION = pd.DataFrame([{"method": "identity", "top_delta_mean": 0.05, "top_delta_mean_low": 0.04,
                            "top_delta_mean_high": 0.06, "frac_top_beats_all": 0.8, "frac_top_beats_all_low": 0.6,
                            "frac_top_beats_all_high": 0.9, "n_queries": 10}])


def test_leaderboard_orders_methods_and_carries_the_summary_numbers():
    board = leaderboard(SUMMARY, VALIDATION)
    assert board["method"].tolist() == ["ekfac", "bm25", "identity"]           # best mean LDS first
    ekfac = board.iloc[0]
    assert ekfac[["LDS", "LDS low", "LDS high"]].tolist() == [0.44, 0.30, 0.55]
    assert ekfac[["LDS − identity", "LDS − identity low", "LDS − identity high"]].tolist() == [0.31, 0.20, 0.41]
    assert (ekfac["queries"], ekfac["sets"]) == (8, 32) and math.isnan(ekfac["tail-patch top-k Δ"])
    identity = board.iloc[2]
    assert identity[["tail-patch top-k Δ", "tail-patch top-k Δ low", "tail-patch top-k Δ high"]].tolist() == [
        0.05, 0.04, 0.06]
    assert identity["tail-patch top beats all random"] == 0.8 and math.isnan(identity["LDS − identity"])
    read = pd.read_csv(io.StringIO(board.to_csv(index=False)))               # the CSV holds numbers
    assert (read.dtypes[read.columns != "method"] != object).all()
    slope = leaderboard(SUMMARY, VALIDATION, "slope")
    assert slope["method"].tolist() == ["bm25", "ekfac", "identity"] and slope["LDS"].tolist() == [0.6, 0.5, 0.3]
    assert slope["tail-patch top-k Δ"].isna().all()                          # tail-patch has no tasks


def test_leaderboard_display_formats_intervals():
    shown = leaderboard_display(leaderboard(SUMMARY, VALIDATION)).set_index("method")
    assert shown.loc["ekfac", "LDS"] == "0.44 [0.3, 0.55]"
    assert shown.loc["ekfac", "LDS − identity"] == "0.31 [0.2, 0.41]"
    assert shown.loc["identity", "LDS − identity"] == "–" and shown.loc["ekfac", "tail-patch top-k Δ"] == "–"
    assert shown.loc["identity", "tail-patch top beats all random"] == "80% [60%, 90%]"


def test_interval_figure_draws_each_interval():
    board = leaderboard(SUMMARY, None)
    lds, difference = interval_figure(board, "t").data
    assert list(lds.y) == ["ekfac", "bm25", "identity"] and list(lds.x) == [0.44, 0.22, 0.13]
    np.testing.assert_allclose(lds.error_x.array, [0.11, 0.15, 0.12])
    np.testing.assert_allclose(lds.error_x.arrayminus, [0.14, 0.17, 0.11])
    np.testing.assert_allclose(difference.x[:2], [0.31, 0.09])
    assert math.isnan(difference.x[2])


def test_query_figure_plots_the_query_and_method_rows():
    rows = [("q1", s, m, 0.1 * s * (1 if m == "ekfac" else -1), 10.0 * s, 100 + s) for s in range(4)
            for m in ("ekfac", "bm25")] + [("q2", 0, "ekfac", 9.0, 9.0, 1)]
    frame = pd.DataFrame(rows, columns=["query_id", "set", "method", "measured", "predicted", "set_tokens"])
    fig = query_figure(frame, "q1", "bm25", -1.0)
    assert list(fig.data[0].x) == [0.0, 10.0, 20.0, 30.0]
    assert list(fig.data[0].y) == pytest.approx([0.0, -0.1, -0.2, -0.3])
    assert "q1 · bm25: 4 sets, Spearman (LDS) = -1.000" == fig.layout.title.text
    assert "undefined" in query_figure(frame, "q1", "ekfac", math.nan).layout.title.text


def test_a_run_without_counterfactual_says_how_to_compute_it(app_args, run_dir):
    app_args(run_dir)
    at = open_page("overview")
    assert_clean(at)
    assert any(HOW_TO in caption.value for caption in at.caption)
    assert not any("LDS − identity" in frame.value.columns for frame in at.dataframe)
    at = open_page("queries")                      # no scatter either
    assert_clean(at)
    assert not any("Spearman (LDS)" in (chart.proto.spec or "") for chart in at.get("plotly_chart"))
