"""Pure pieces of the dashboard, tested without a Streamlit session: figure builders, escaping, rankings."""
import numpy as np
import pandas as pd
import pytest

from dashboard import charts, ranking, similarity, text_match, widgets


def test_correlation_heatmap_draws_the_lower_triangle_by_query_id():
    ids = ["q1", "q2", "q3"]
    matrix = np.array([[1.0, 0.2, -0.5], [0.2, 1.0, 0.7], [-0.5, 0.7, 1.0]])
    fig = charts.correlation_heatmap(matrix, ids, ["a", "a", "b"])
    trace = fig.data[0]
    assert trace.type == "heatmap" and list(trace.x) == ids and list(trace.y) == ids
    np.testing.assert_allclose(np.asarray(trace.z, dtype=float),
                               [[1.0, np.nan, np.nan], [0.2, 1.0, np.nan], [-0.5, 0.7, 1.0]])
    assert fig.layout.meta == charts.HEATMAP_META  # how the click listener finds it
    assert list(fig.layout.xaxis.ticktext) == ids
    assert charts.short_labels(["slope-03", "factual_12", "q9"], ["slope", "factual", "t"]) == ["03", "12", "q9"]
    assert [a.text for a in fig.layout.annotations] == ["<b>a</b>", "<b>b</b>"]
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(-0.5, 1.5), (1.5, 2.5)]  # task blocks outlined
    chosen = charts.correlation_heatmap(matrix, ids, ["a", "a", "b"], chosen=("q1", "q3"))
    ring = [shape for shape in chosen.layout.shapes if shape.name == "chosen"][-1]
    assert (ring.x0 + ring.x1) / 2 == 0 and (ring.y0 + ring.y1) / 2 == 2  # lower triangle: row q3, column q1


def test_source_small_multiples_one_panel_per_task_with_chance_bands():
    from dashboard.views.sources import with_chance_band

    table = pd.DataFrame({"task": ["t1", "t1", "t2", "t2", "t1"], "side": "top", "k": [50, 50, 50, 50, 1000],
                          "source": ["web", "code", "web", "code", "web"], "multiplier": [2.0, 0.5, 1.5, 0.8, 1.0],
                          "base_share": [0.3, 0.7, 0.3, 0.7, 0.3]})
    banded = with_chance_band(table, n_documents=1000)
    assert 1000 not in set(banded["k"])  # k = corpus size is ×1 by definition
    fig = charts.source_small_multiples(banded, "t")
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.xaxis for t in bars] == ["x", "x2"] and list(bars[0].x) == ["code", "web"]
    assert [tuple(c) for c in bars[1].customdata] == [("t2", "code", "50"), ("t2", "web", "50")]
    band = next(t for t in fig.data if t.type == "scatter")
    web = banded[(banded["task"] == "t1") & (banded["source"] == "web")].iloc[0]
    assert band.y[1] + band.error_y.array[1] == pytest.approx(web["chance_high"])


def test_chance_band_matches_random_draws():
    from dashboard.views.sources import with_chance_band

    rng = np.random.default_rng(0)
    n, in_source, k = 2000, 300, 50
    corpus = np.zeros(n, dtype=bool)
    corpus[:in_source] = True
    draws = np.array([corpus[rng.choice(n, k, replace=False)].mean() for _ in range(20000)]) / (in_source / n)
    band = with_chance_band(pd.DataFrame({"k": [k], "base_share": [in_source / n]}), n_documents=n).iloc[0]
    assert np.mean(draws < band["chance_low"]) <= 0.025 and np.mean(draws > band["chance_high"]) <= 0.025
    assert np.mean((draws >= band["chance_low"]) & (draws <= band["chance_high"])) >= 0.95


def test_rank_percentiles_and_moments_match_numpy_and_scipy(run_dir):
    from scipy.stats import percentileofscore

    from dashboard.run import read_run
    from dashboard.views.documents import query_moments, rank_percentiles

    run = read_run(run_dir)
    percentiles = rank_percentiles(run.scores, 17)
    scores = np.asarray(run.scores)
    for row in (0, 5, run.n_queries - 1):
        assert percentiles[row] == pytest.approx(percentileofscore(scores[row], scores[row, 17], kind="strict"))
    mean, std = query_moments.__wrapped__(run.key, run)
    np.testing.assert_allclose(mean, scores.astype(np.float64).mean(axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std, scores.astype(np.float64).std(axis=1), rtol=1e-6)


def test_one_r_per_pair_on_the_correlations_page(run_dir):
    """The heatmap's r (correlations.parquet) is Pearson over all documents: the scatter's title shows it."""
    from dashboard.run import read_run
    from dashboard.views.correlations import correlation_matrix, pair_r, unique_task_pairs

    run = read_run(run_dir)
    ids, tasks, matrix = correlation_matrix.__wrapped__(run.key, run.analysis_table("correlations"), run.queries)
    assert tasks == sorted(tasks)
    scores = np.asarray(run.scores, dtype=np.float64)
    for a, b in (("q0001", "q0010"), ("q0003", "q0004"), ("q0020", "q0002")):
        expected = np.corrcoef(scores[run.query_row(a)], scores[run.query_row(b)])[0, 1]
        assert pair_r(matrix, ids, a, b) == pytest.approx(expected, abs=5e-4)
        assert pair_r(matrix, ids, a, b) == pair_r(matrix, ids, b, a)
    pairs = unique_task_pairs(run.analysis_table("task_correlations"))
    keys = [tuple(sorted(p)) for p in zip(pairs["task_a"], pairs["task_b"])]
    n_tasks = run.queries["task"].nunique()
    assert len(keys) == len(set(keys)) == n_tasks * (n_tasks + 1) // 2
    fig = charts.task_matrix(pairs)
    assert np.allclose(np.asarray(fig.data[0].z), np.asarray(fig.data[0].z).T, equal_nan=True)


def test_layer_split_and_magnitude_and_profile_values():
    fig = charts.layer_split(["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"],
                             np.array([3.0, 1.0]), np.array([-1.0, -2.0]), "t")
    assert list(fig.data[0].x) == ["L0.down_proj", "L1.down_proj"]
    assert list(fig.data[1].y) == [-1.0, -2.0]
    curves = pd.DataFrame({"task": ["a", "a", "a", "b"], "percentile": [10.0, 1.0, 0.01, 1.0],
                           "relative_mean": [0.9, 0.5, 0.1, 0.3]})
    fig = charts.magnitude_curves(curves, "relative_mean", "t", log_y=False, y_title="share", n_documents=1000)
    assert list(fig.data[0].x) == [1.0, 10.0] and list(fig.data[0].y) == [0.5, 0.9]  # from 1 document (0.1%) up
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.dtick == 1 and fig.layout.yaxis.title.text == "share"
    profile = pd.DataFrame({"query_id": ["q1", "q2"], "task": ["t1", "t2"], "score": [0.5, -0.25]})
    fig = charts.document_profile(profile, "t")
    assert [list(t.y) for t in fig.data] == [[0.5], [-0.25]]


def test_token_heatmap_escapes_and_colours_by_sign():
    html = widgets.token_heatmap_html(["<script>alert(1)</script>", " ok", "<img src=x onerror=alert(1)>"],
                                      np.array([2.0, -1.0, 0.0]))
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "rgba(214,39,40,0.85)" in html  # the largest positive token, full red
    assert "rgba(20,163,154,0.42)" in html  # half as large, negative: teal


def test_escaped_text_and_markdown_text():
    assert "<script>" not in widgets.escaped_text_html("<script>x</script>")
    block = widgets.escaped_text_html("line one\n\n[x](javascript:alert(1)) **b**\r\n# h")
    assert "\n" not in block and "\r" not in block and block.count("<br>") == 3  # one HTML block: no markdown
    assert "\n" not in widgets.token_heatmap_html(["a\n\n", "[x](y)"], np.array([1.0, -1.0]))
    safe = widgets.markdown_text("<b>*x*</b> [link](http://a)")
    assert "<b>" not in safe and "\\*x\\*" in safe and "\\[link\\]" in safe


def test_top_and_bottom_order():
    values = np.array([0.1, 5.0, -3.0, 2.0, -7.0, 0.0], dtype=np.float32)
    top, bottom = ranking.top_and_bottom(values, 2)
    assert list(top) == [1, 3] and list(bottom) == [4, 2]
    top, bottom = ranking.top_and_bottom(values, 10)
    assert list(top) == [1, 3, 0, 5, 2, 4]


def test_contains_value_follows_the_contract_rule():
    assert text_match.contains_value("so 12 + 30 = 42.", "42")
    assert not text_match.contains_value("the code 1420 and 4.42", "42")
    assert text_match.contains_value("The city of paris is", "Paris")
    assert not text_match.contains_value("Parisian food", "Paris")
    query = {"answer": "42", "steps": ["12", "30"]}
    assert text_match.query_targets(query) == [("answer", "42"), ("step_1", "12"), ("step_2", "30")]
    assert text_match.found_targets("12 and 42", text_match.query_targets(query)) == ["answer", "step_1"]


def test_profile_vectors_are_unit_rows():
    scores = np.array([[3.0, 0.0, 1.0], [4.0, 0.0, -1.0]], dtype=np.float32)
    vectors = similarity.profile_vectors(scores, 0, 3)
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 0.0], [2 ** -0.5, -(2 ** -0.5)]], rtol=1e-6)


def test_information_scatter_plots_each_query_and_the_fitted_line():
    table = pd.DataFrame({"query_id": ["a1", "a2", "f1", "f2", "x"], "task": ["arith", "arith", "factual", "factual",
                                                                              "arith"],
                          "log_nats": [0.1, 0.5, -3.0, -2.0, np.nan], "log_top_influence": [1.0, 1.5, -2.0, -1.0, 2.0],
                          "fitted": [1.1, 1.4, -2.1, -0.9, np.nan], "in_fit": [True, True, True, True, False]})
    fig = charts.information_scatter(table, "t")
    points = {trace.name: trace for trace in fig.data if trace.mode == "markers"}
    assert set(points) == {"arith", "factual"} and list(points["arith"].customdata) == ["a1", "a2"]   # no NaN point
    lines = [trace for trace in fig.data if trace.mode == "lines"]
    assert [list(line.y) for line in lines] == [[1.1, 1.4], [-2.1, -0.9]]


def test_a_task_has_one_colour_on_every_chart_and_run():
    curves = pd.DataFrame({"task": ["slope", "factual", "zeta"], "percentile": [1.0, 1.0, 1.0],
                           "relative_mean": [0.5, 0.3, 0.2]})
    information = pd.DataFrame({"query_id": ["s1", "f1", "z1"], "task": ["slope", "factual", "zeta"],
                                "log_nats": [0.1, -2.0, 0.3], "log_top_influence": [1.0, -1.0, 0.5],
                                "fitted": [np.nan] * 3, "in_fit": [False] * 3})
    power_law = pd.DataFrame({"query_id": ["f1", "s1"], "task": ["factual", "slope"], "slope": [-1.0, -2.0]})
    colours = [
        {t.name: t.line.color for t in charts.magnitude_curves(curves, "relative_mean", "t", True, "y").data},
        {t.name: t.marker.color for t in charts.information_scatter(information, "t").data},
        {t.name: t.marker.color for t in charts.slope_boxes(power_law).data},
        dict(zip(["factual", "slope"],
                 charts.count_bars(pd.Series([3, 4], index=["factual", "slope"]), "t", "task", by_task=True)
                 .data[0].marker.color)),
    ]
    for task in ("slope", "factual", "zeta"):
        assert len({chart[task] for chart in colours if task in chart}) == 1, task
        assert all(chart[task] == charts.task_colour(task) for chart in colours if task in chart)
    assert charts.task_colour("slope") != charts.task_colour("factual")
    known = [charts.task_colour(t) for t in ("factual", "arithmetic", "slope", "linear_equation",
                                             "factual_control", "reasoning_control")]
    assert len(set(known)) == len(known)                    # the paper's and the demo's tasks never share one
    assert charts.task_colour("zeta") in charts.OTHER_TASK_COLOURS   # any other task: a fixed hash of its name


def test_enrichment_bars_log_axis_and_answers_defaults():
    from dashboard.views.answers import DWARF_RATIO, findings_k, values_dwarf_others
    from precompute.analysis.context import FINDINGS_K

    table = pd.DataFrame({"task": ["factual_control", "slope"], "target_kind": "answer",
                          "enrichment": [180.0, 2.8], "ci_low": [8.3, 2.7], "ci_high": [400.0, 3.0]})
    fig = charts.enrichment_bars(table, "t", log_y=True)
    assert fig.layout.yaxis.type == "log" and "1×" in fig.layout.yaxis.ticktext
    assert list(fig.layout.yaxis.ticktext) == [f"{v:g}×" for v in fig.layout.yaxis.tickvals]
    assert 10 ** fig.layout.yaxis.range[0] <= 1.0 and 10 ** fig.layout.yaxis.range[1] >= 400.0
    assert charts.enrichment_bars(table, "t").layout.yaxis.type != "log"
    assert values_dwarf_others([180.0, 2.8, np.nan, 0.0]) and not values_dwarf_others([2.0, 2.0 * DWARF_RATIO])
    assert findings_k([50, 100, FINDINGS_K], 10_000) == FINDINGS_K      # the finding's depth, not the first k
    assert findings_k([50, 80, 100], 90) == 80                           # capped at the corpus size, as analysis does
    assert findings_k([50, 80], 80) == 50           # k = the corpus size is x1 by definition: the largest k below
    assert findings_k([50, 100], 10_000) == 100
