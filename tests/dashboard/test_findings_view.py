"""The findings view: the table's and the forest plot's numbers equal the records, one panel per unit with full log
tick labels for ratios, sentences are escaped text without HTML entities."""
import io

import numpy as np
import pandas as pd

from dashboard.charts import log_ticks
from dashboard.findings_view import (claim_and_scope, effect_unit, finding_label, finding_sentences, findings_table,
                                     forest_plot, plain_markdown, survivors_line)

RECORDS = [
    {"name": "correlation.reasoning_vs_factual", "measure": "difference", "effect": 0.036, "ci_low": -0.025,
     "ci_high": 0.11, "verdict": "not supported", "n": 116, "effect_label": "difference",
     "text": "The paper's claim: r differs by 0.036 (95% CI -0.025 to 0.11). Verdict: not supported."},
    {"name": "occurrence.answer", "measure": "ratio", "effect": 0.3, "ci_low": 0.2, "ci_high": 0.45,
     "verdict": "holds", "n": 110, "effect_label": "ratio", "text": "Ratio 0.3× [x_1]. Verdict: holds."},
    {"name": "magnitude.per_nat_top1", "measure": "ratio", "effect": 2.2, "ci_low": 1.5, "ci_high": 3.0,
     "verdict": "reversed", "n": 100, "effect_label": "ratio", "text": "Reversed <b>."},
]


def _points(fig) -> dict:
    """finding name -> (effect, low, high, verdict, x axis) read back from the figure's traces."""
    points = {}
    for trace in fig.data:
        for custom, x, plus, minus in zip(trace.customdata, trace.x, trace.error_x.array, trace.error_x.arrayminus):
            points[custom[0]] = (x, x - minus, x + plus, trace.name, trace.xaxis)
    return points


def test_forest_plot_draws_each_interval_around_its_effect():
    fig = forest_plot(RECORDS)
    points = _points(fig)
    for record in RECORDS:
        x, low, high, verdict, _ = points[record["name"]]
        np.testing.assert_allclose([x, low, high], [record["effect"], record["ci_low"], record["ci_high"]])
        assert verdict == record["verdict"]
    assert fig.layout.xaxis2.type == "log"                     # ratios on a log axis, in their own panel
    null_lines = sorted(shape.x0 for shape in fig.layout.shapes)
    assert null_lines == [0.0, 1.0]


PANELLED = RECORDS + [
    {"name": "validation.ekfac.standardised_effect", "measure": "difference", "effect": 27.4, "ci_low": 26.3,
     "ci_high": 40.6, "verdict": "holds", "n": 136},
    {"name": "validation.bm25.top_beats_random", "measure": "difference", "effect": 0.455, "ci_low": 0.367,
     "ci_high": 0.558, "verdict": "holds", "n": 136},
    {"name": "occurrence.answer_in_context", "measure": "difference", "effect": -0.307, "ci_low": -0.399,
     "ci_high": -0.215, "verdict": "holds", "n": 116},
    {"name": "ground_truth.slope.specificity", "measure": "ratio", "effect": 2.69, "ci_low": 2.36, "ci_high": 2.97,
     "verdict": "holds", "n": 24},
]


def test_each_unit_has_its_own_panel_and_ratios_full_log_ticks():
    fig = forest_plot(PANELLED)
    points = _points(fig)
    axis_of = {name: point[4] for name, point in points.items()}
    # Δr, scaled enrichment, ratios, share − chance and the standardised effect: five panels, five x axes
    assert len({axis_of[r["name"]] for r in PANELLED}) == 5
    assert axis_of["magnitude.per_nat_top1"] == axis_of["occurrence.answer"] == axis_of[
        "ground_truth.slope.specificity"]                        # the ratios share the log panel
    assert axis_of["correlation.reasoning_vs_factual"] != axis_of["validation.ekfac.standardised_effect"]
    assert axis_of["validation.bm25.top_beats_random"] != axis_of["validation.ekfac.standardised_effect"]
    ratio_axis = fig.layout["xaxis" + axis_of["occurrence.answer"][1:]]
    assert ratio_axis.type == "log" and "1×" in ratio_axis.ticktext
    assert list(ratio_axis.ticktext) == [f"{v:g}×" for v in ratio_axis.tickvals]   # every tick labelled in full
    low, high = (10 ** end for end in ratio_axis.range)     # the axis holds every ratio interval and 1
    assert low < 0.2 and high > 3.0
    for name, axis in axis_of.items():
        if axis != axis_of["occurrence.answer"]:
            assert fig.layout["xaxis" + axis[1:]].type != "log", name
    ratio_y = fig.layout["yaxis" + axis_of["occurrence.answer"][1:]]
    assert list(ratio_y.categoryarray) == [finding_label(r) for r in PANELLED if r["measure"] == "ratio"]
    titles = [annotation.text for annotation in fig.layout.annotations]
    assert any("standardised effect" in t for t in titles) and any("Pearson r" in t for t in titles)


def test_log_ticks_cover_the_range_with_full_labels():
    values, labels = log_ticks(0.7, 5.5)
    assert values == [0.7, 1.0, 1.5, 2.0, 3.0, 5.0] and labels == ["0.7×", "1×", "1.5×", "2×", "3×", "5×"]
    values, labels = log_ticks(0.01, 300)
    assert values == [0.01, 0.1, 1.0, 10.0, 100.0] and labels[0] == "0.01×"
    assert 1.0 in log_ticks(1.2, 1.4)[0]                     # the no-effect line always has its tick


def test_findings_table_numbers_equal_the_records():
    records = [dict(r, adjusted_verdict="not supported", primary=i == 0, holm_p=0.5) for i, r in
               enumerate(PANELLED)]
    shown, exported = findings_table(records)
    assert shown["claim"].tolist()[:2] == ["correlation: reasoning vs factual", "occurrence: answer"]
    assert shown["task or method"].tolist()[:2] == ["pooled", "pooled"]
    assert shown.loc[3, "task or method"] == "ekfac" and shown.loc[3, "unit"] == "standardised effect"
    assert shown.loc[1, "effect [95% CI]"] == "0.3× [0.2, 0.45]"
    assert shown.loc[0, "effect [95% CI]"] == "0.036 [-0.025, 0.11]"
    read = pd.read_csv(io.StringIO(exported.to_csv(index=False)))
    for column, field in (("effect", "effect"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("n", "n")):
        assert read[column].dtype.kind in "fi"
        np.testing.assert_allclose(read[column], [r[field] for r in records])
    assert read["verdict"].tolist() == [r["verdict"] for r in records]
    assert read["adjusted_verdict"].tolist() == ["not supported"] * len(records)
    assert read["primary"].tolist() == [True] + [False] * (len(records) - 1)


def test_claim_scope_and_unit_from_the_name():
    assert claim_and_scope("correlation.same_vs_cross_task.linear_equation") == (
        "correlation: same vs cross task", "linear_equation")
    assert claim_and_scope("validation.identity.bottom_below_random") == ("validation: bottom below random",
                                                                         "identity")
    assert claim_and_scope("ground_truth.slope") == ("ground truth: procedure share", "slope")
    assert finding_label({"name": "magnitude.information_adjusted"}) == "magnitude: information adjusted · pooled"
    assert effect_unit({"name": "magnitude.per_nat_top1", "measure": "ratio"}) == "ratio"
    assert effect_unit({"name": "new_family.x", "measure": "difference"}) == "new family difference"


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
        "After Holm over the run's 3 findings, 1 keep their verdict. Headline claims "
        "(correlation.reasoning_vs_factual, occurrence.answer): 1 of 2 keep theirs (occurrence.answer).")
