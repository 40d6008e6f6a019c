"""Pure pieces of the dashboard, tested without a Streamlit session: figure builders, escaping, rankings."""
import numpy as np
import pandas as pd

from dashboard import charts, ranking, similarity, text_match, widgets


def test_correlation_heatmap_markers_carry_the_matrix():
    ids = ["q1", "q2", "q3"]
    matrix = np.array([[1.0, 0.2, -0.5], [0.2, 1.0, 0.7], [-0.5, 0.7, 1.0]])
    fig = charts.correlation_heatmap(matrix, ids, ["a", "a", "b"])
    trace = fig.data[0]
    assert trace.marker.symbol == "square"
    # lower triangle, row by row: (q1,q1) (q2,q1) (q2,q2) (q3,q1) (q3,q2) (q3,q3)
    np.testing.assert_allclose(np.asarray(trace.marker.color), [1.0, 0.2, 1.0, -0.5, 0.7, 1.0])
    assert list(trace.x) == [0, 0, 1, 0, 1, 2] and list(trace.y) == [0, 1, 1, 2, 2, 2]
    assert charts.heatmap_cell(1, ids) == ("q2", "q1") and charts.heatmap_cell(4, ids) == ("q3", "q2")
    assert trace.hovertext[4] == "q3 × q2"
    assert list(fig.layout.xaxis.ticktext) == ids
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]


def test_source_multiplier_bars_one_trace_per_k_with_clickable_data():
    table = pd.DataFrame({"source": ["web", "code", "web", "code"], "k": [50, 50, 500, 500],
                          "multiplier": [2.0, 0.5, 1.5, 0.8]})
    fig = charts.source_multipliers(table, "t")
    assert [t.name for t in fig.data] == ["k = 50", "k = 500"]
    assert list(fig.data[0].y) == [0.5, 2.0]  # sorted by source: code, web
    assert [tuple(c) for c in fig.data[1].customdata] == [("code", "500"), ("web", "500")]


def test_layer_split_and_magnitude_and_profile_values():
    fig = charts.layer_split(["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"],
                             np.array([3.0, 1.0]), np.array([-1.0, -2.0]), "t")
    assert list(fig.data[0].x) == ["L0.down_proj", "L1.down_proj"]
    assert list(fig.data[1].y) == [-1.0, -2.0]
    curves = pd.DataFrame({"task": ["a", "a", "b"], "percentile": [10.0, 1.0, 1.0], "relative_mean": [0.9, 0.5, 0.3]})
    fig = charts.magnitude_curves(curves, "relative_mean", "t", log_y=False)
    assert list(fig.data[0].x) == [1.0, 10.0] and list(fig.data[0].y) == [0.5, 0.9]
    assert fig.layout.xaxis.type == "log"
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
