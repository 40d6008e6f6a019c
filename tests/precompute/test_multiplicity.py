"""precompute.analysis.multiplicity: Holm against hand-computed examples, the adjusted verdicts over a run and its
headline claims, and the interval p read off an interval for producers that give none."""
import math

import pytest
from scipy import stats

from precompute.analysis import multiplicity


def test_holm_against_a_hand_computed_example():
    # sorted: 0.005 (×4 = 0.02), 0.01 (×3 = 0.03), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 -> running max 0.06)
    adjusted = multiplicity.holm_adjusted([0.01, 0.04, math.nan, 0.03, 0.005])
    assert adjusted[[0, 1, 3, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(adjusted[2])
    assert multiplicity.holm_adjusted([0.5, 0.4]).tolist() == pytest.approx([0.8, 0.8])   # 2 × 0.4, then max(0.8, 0.5)


def test_adjusted_verdicts_follow_holm_over_the_run_and_the_primary_family():
    def record(name, interval_p, verdict="holds"):
        return {"name": name, "claim": "C.", "effect_label": "e", "measure": "difference", "effect": 0.1,
                "ci_low": 0.01, "ci_high": 0.2, "n": 10, "verdict": verdict, "interval_p": interval_p,
                "p_value": None}
    primary = multiplicity.PRIMARY_FINDINGS
    records = multiplicity.adjust_for_multiplicity(
        [record(primary[0], 0.012), record(primary[1], 0.02), record("other.a", 0.001), record("other.b", 0.3,
                                                                                                  "not supported")])
    by_name = {r["name"]: r for r in records}
    # all four: 0.001×4 = 0.004, 0.012×3 = 0.036, 0.02×2 = 0.04, 0.3; primary pair: 0.012×2 = 0.024, 0.02
    assert by_name["other.a"]["holm_p"] == pytest.approx(0.004) and by_name["other.a"]["adjusted_verdict"] == "holds"
    assert by_name[primary[0]]["holm_p"] == pytest.approx(0.036)
    assert by_name[primary[1]]["holm_p"] == pytest.approx(0.04)
    assert by_name[primary[0]]["primary_holm_p"] == pytest.approx(0.024)
    assert by_name[primary[1]]["primary_holm_p"] == pytest.approx(0.024)
    assert by_name["other.b"]["adjusted_verdict"] == "not supported" and by_name["other.b"]["primary"] is False
    assert by_name["other.b"]["primary_holm_p"] is None and by_name[primary[0]]["family_size"] == 4
    assert "After Holm over the run's 4 findings: holds" in by_name[primary[0]]["text"]


def test_p_from_interval_matches_the_interval_and_a_normal_mean():
    # a symmetric normal interval: mean 0.3, se 0.1 -> z = 3, p = 2 Φ(-3)
    record = {"effect": 0.3, "ci_low": 0.3 - 1.959964 * 0.1, "ci_high": 0.5, "measure": "difference"}
    assert multiplicity.p_from_interval(record) == pytest.approx(2 * stats.norm.sf(3.0), rel=1e-5)
    for low, high in ((0.01, 0.9), (-0.01, 0.9), (-0.5, -0.02)):
        p = multiplicity.p_from_interval({"effect": (low + high) / 2, "ci_low": low, "ci_high": high,
                                        "measure": "difference"})
        assert (p < 0.05) == (low > 0 or high < 0)
    ratio = multiplicity.p_from_interval({"effect": 2.0, "ci_low": 1.0, "ci_high": 5.0, "measure": "ratio"})
    assert ratio == pytest.approx(0.05)                  # the interval touches the null: p = alpha
    adjusted = multiplicity.adjust_for_multiplicity([{**record, "name": "lds.x", "claim": "C.", "effect_label": "e",
                                                    "n": 5, "verdict": "holds", "p_value": None}])[0]
    assert adjusted["interval_p"] == pytest.approx(2 * stats.norm.sf(3.0), rel=1e-5)
    assert adjusted["adjusted_verdict"] == "holds"
