"""The validation panel's figure and summary table carry the run's numbers (pure functions, no Streamlit run)."""
import io
import math

import pandas as pd

from dashboard.validation_view import query_figure, query_numbers, summary_display, summary_export


def validation_frame() -> pd.DataFrame:
    rows = [("q1", "random", "random", d, v) for d, v in enumerate([0.01, 0.02, 0.03])]
    rows += [("q1", "ekfac", "top", 0, 0.5), ("q1", "ekfac", "bottom", 0, -0.2), ("q1", "bm25", "top", 0, 0.04),
             ("q2", "random", "random", 0, 9.0)]
    frame = pd.DataFrame(rows, columns=["query_id", "method", "set", "draw", "delta_logprob"])
    return frame.assign(k=20, steps=1, lr=0.5, set_tokens=100)


def test_query_figure_shows_the_query_rows():
    fig = query_figure(validation_frame(), "q1")
    box, top, bottom = fig.data
    assert list(box.y) == [0.01, 0.02, 0.03]                  # q2's random draw is not shown
    assert list(top.x) == ["ekfac", "bm25"] and list(top.y) == [0.5, 0.04]
    assert list(bottom.x) == ["ekfac"] and list(bottom.y) == [-0.2]
    band = fig.layout.shapes[0]
    assert (band.y0, band.y1) == (0.01, 0.03)
    assert "k = 20" in fig.layout.title.text and "lr 0.5" in fig.layout.title.text


def test_query_numbers_count_random_sets_beyond_and_standardise():
    table = query_numbers(validation_frame(), "q1").set_index(["method", "set"])
    sd = ((0.01 ** 2 + 0 + 0.01 ** 2) / 2) ** 0.5               # random 0.01, 0.02, 0.03: mean 0.02, sample sd 0.01
    assert math.isclose(sd, 0.01)
    top = table.loc[("ekfac", "top-k")]
    assert top["Δ log p (nats)"] == 0.5 and top["random sets beyond"] == 3 and top["random sets"] == 3
    assert math.isclose(top["standardised effect"], (0.5 - 0.02) / 0.01)
    bottom = table.loc[("ekfac", "bottom-k")]
    assert bottom["random sets beyond"] == 3 and math.isclose(bottom["standardised effect"], (-0.2 - 0.02) / 0.01)
    bm25 = table.loc[("bm25", "top-k")]
    assert bm25["random sets beyond"] == 3 and math.isclose(bm25["standardised effect"], 2.0)
    assert len(table) == 3 and set(table["set tokens"]) == {100}
    lone = query_numbers(validation_frame(), "q2")                # one random set, no ranked sets
    assert lone.empty


SUMMARY = [{
        "method": "bm25", "n_queries": 10, "chance_beats_all": 1 / 9, "random_delta_mean": 0.01,
        "random_sd_mean": 0.002, "top_delta_mean": 0.05, "top_delta_mean_low": 0.04, "top_delta_mean_high": 0.06,
        "bottom_delta_mean": math.nan, "frac_top_beats_all": 0.8, "frac_top_beats_all_low": 0.6,
        "frac_top_beats_all_high": 0.9, "frac_bottom_below_all": math.nan, "top_z_median": 3.0,
        "top_z_median_low": 2.0, "top_z_median_high": 4.0, "top_win_rate": 0.95, "top_win_rate_low": 0.9,
        "top_win_rate_high": 1.0}]


def test_summary_display_formats_intervals():
    summary = pd.DataFrame(SUMMARY)
    row = summary_display(summary).iloc[0]
    assert row["top-k Δ"] == "0.05 [0.04, 0.06]" and row["bottom-k Δ"] == "–"
    assert row["top beats all random"] == "80% [60%, 90%]" and row["chance"] == "11%"
    assert row["standardised effect (median)"] == "3 [2, 4]" and row["win rate vs random"] == "95% [90%, 100%]"


def test_summary_export_reads_back_as_numbers():
    """The CSV holds each estimate and its bounds in their own numeric columns, under the screen's labels."""
    read = pd.read_csv(io.StringIO(summary_export(pd.DataFrame(SUMMARY)).to_csv(index=False))).iloc[0]
    assert read[["top-k Δ", "top-k Δ low", "top-k Δ high"]].tolist() == [0.05, 0.04, 0.06]
    assert read[["top beats all random", "top beats all random low", "top beats all random high"]].tolist() == [
        0.8, 0.6, 0.9]
    assert read["queries"] == 10 and read["method"] == "bm25" and abs(read["chance"] - 1 / 9) < 1e-15
    assert math.isnan(read["bottom-k Δ"]) and read["random Δ sd"] == 0.002
    assert set(summary_display(pd.DataFrame(SUMMARY)).columns) - {"random Δ (mean, sd)"} <= set(read.index)


def test_shares_show_their_exact_interval_when_the_summary_has_one():
    summary = pd.DataFrame([dict(SUMMARY[0], frac_top_beats_all=1.0, frac_top_beats_all_low=1.0,
                                 frac_top_beats_all_high=1.0, frac_top_beats_all_exact_low=0.9732,
                                 frac_top_beats_all_exact_high=1.0)])
    assert summary_display(summary).iloc[0]["top beats all random"] == "100.0% [97.3%, 100.0%] exact"
    exported = summary_export(summary).iloc[0]
    assert exported["top beats all random low"] == 0.9732 and exported["win rate vs random low"] == 0.9
