"""The findings view: forest plot numbers equal the records, sentences are escaped text without HTML entities."""
import numpy as np

from dashboard.findings_view import finding_sentences, forest_plot, plain_markdown, survivors_line

RECORDS = [
    {"name": "correlation.reasoning_vs_factual", "measure": "difference", "effect": 0.036, "ci_low": -0.025,
     "ci_high": 0.11, "verdict": "not supported", "n": 116, "effect_label": "difference",
     "text": "The paper's claim: r differs by 0.036 (95% CI -0.025 to 0.11). Verdict: not supported."},
    {"name": "occurrence.answer", "measure": "ratio", "effect": 0.3, "ci_low": 0.2, "ci_high": 0.45,
     "verdict": "holds", "n": 110, "effect_label": "ratio", "text": "Ratio 0.3× [x_1]. Verdict: holds."},
    {"name": "magnitude.per_nat_top1", "measure": "ratio", "effect": 2.2, "ci_low": 1.5, "ci_high": 3.0,
     "verdict": "reversed", "n": 100, "effect_label": "ratio", "text": "Reversed <b>."},
]


def test_forest_plot_draws_each_interval_around_its_effect():
    fig = forest_plot(RECORDS)
    points = {}
    for trace in fig.data:
        for name, x, plus, minus in zip(trace.y, trace.x, trace.error_x.array, trace.error_x.arrayminus):
            points[name] = (x, x - minus, x + plus, trace.name)
    for record in RECORDS:
        x, low, high, verdict = points[record["name"]]
        np.testing.assert_allclose([x, low, high], [record["effect"], record["ci_low"], record["ci_high"]])
        assert verdict == record["verdict"]
    assert fig.layout.xaxis2.type == "log"                     # ratios on a log axis, in their own panel
    null_lines = sorted(shape.x0 for shape in fig.layout.shapes)
    assert null_lines == [0.0, 1.0]


def test_sentences_are_escaped_markdown_without_html_entities():
    lines = finding_sentences(RECORDS)
    assert lines[0].startswith("- :gray-badge[not supported] The paper's claim")
    assert "&#" not in "".join(lines) and "\\[x\\_1\\]" in lines[1] and "\\<b\\>" in lines[2]
    assert lines[1].startswith("- :green-badge[holds]") and lines[2].startswith("- :red-badge[reversed]")
    assert plain_markdown("a*b $c$") == "a\\*b \\$c\\$"


def test_adjusted_verdicts_show_as_second_badges_and_survivors():
    adjusted = [dict(RECORDS[0], adjusted_verdict="not supported", primary=True,
                     primary_adjusted_verdict="not supported", family_size=3),
                dict(RECORDS[1], adjusted_verdict="holds", primary=True, primary_adjusted_verdict="holds",
                     family_size=3),
                dict(RECORDS[2], adjusted_verdict="not supported", primary=False, family_size=3)]
    lines = finding_sentences(adjusted)
    assert lines[1].startswith("- :green-badge[holds] :green-badge[after Holm: holds] "
                               ":green-badge[headline claim, after Holm: holds] Ratio")
    assert lines[2].startswith("- :red-badge[reversed] :gray-badge[after Holm: not supported] Reversed")
    assert survivors_line(adjusted) == (
        "After Holm over the run's 3 findings, 1 keep their verdict: occurrence.answer. Headline claims "
        "(correlation.reasoning_vs_factual, occurrence.answer): 1 of 2 keep theirs (occurrence.answer).")
