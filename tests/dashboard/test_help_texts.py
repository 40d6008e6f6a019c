"""The help texts and captions state the thresholds the code applies: read the number off the text and check it
against the computation's behaviour, and no page hard-codes its own copy."""
import re
from pathlib import Path

import numpy as np

from dashboard import score_help
from precompute.analysis import ranking

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
STATED_THRESHOLD = re.compile(r"(?:under|below|less than|<)\s*(\d*\.?\d+)\s*nats")


def test_the_per_nat_help_states_the_threshold_per_nat_applies():
    for text in (score_help.MEANING["per nat"], score_help.LOW_INFORMATION):
        stated = [float(value) for value in STATED_THRESHOLD.findall(text)]
        assert len(stated) == 1, text
        just_below, just_above = stated[0] * 0.999, stated[0] * 1.001
        values = ranking.per_nat(np.ones((2, 3)), np.array([just_below, just_above]))
        assert np.isnan(values[0]).all() and np.isfinite(values[1]).all(), (text, stated)
        assert ranking.low_information(np.array([just_below, just_above])).tolist() == [True, False]


def test_no_page_hard_codes_a_nats_threshold():
    """Every statement of the low-information threshold in the dashboard's code comes from score_help."""
    for path in DASHBOARD.rglob("*.py"):
        found = STATED_THRESHOLD.findall(path.read_text())
        assert not found, f"{path.relative_to(DASHBOARD)} states a threshold {found}: use score_help.LOW_INFORMATION"


def test_the_filter_help_states_the_limits_the_filter_applies():
    import pandas as pd
    import pytest

    from dashboard.query_filter import FilterError, filter_rows
    from dashboard.views.queries import FILTER_HELP

    chars, depth, text, items = (int(v.replace(",", "")) for v in re.search(
        r"At most ([\d,]+) characters, (\d+) levels of nesting, texts of (\d+) characters and lists of (\d+) items",
        FILTER_HELP).groups())
    frame = pd.DataFrame({"id": ["a", "b"], "nats": [1.0, 2.0]})
    for expression, fits in [("nats > 1" + " " * (chars - 8), True), ("nats > 1" + " " * (chars - 7), False),
                             (f'id == "{"x" * text}"', True), (f'id == "{"x" * (text + 1)}"', False),
                             (f"nats in [{', '.join(['1'] * items)}]", True),
                             (f"nats in [{', '.join(['1'] * (items + 1))}]", False)]:
        if fits:
            filter_rows(frame, expression)
        else:
            with pytest.raises(FilterError):
                filter_rows(frame, expression)
    assert filter_rows(frame, "not " * (2 * (depth // 4)) + "nats > 1")["id"].tolist() == ["b"]   # even: no change
    with pytest.raises(FilterError, match=f"deeper than {depth}"):
        filter_rows(frame, "not " * (depth + 1) + "nats > 1")


def test_the_answers_help_states_the_default_k_and_log_rule_the_page_applies(run_dir):
    import json

    import pandas as pd

    from dashboard.views.answers import LOG_HELP, findings_k, k_help, values_dwarf_others

    ratio = float(re.search(r"more than ([\d.]+)× another's", LOG_HELP).group(1))
    assert values_dwarf_others([1.0, ratio * 1.001]) and not values_dwarf_others([1.0, ratio * 0.999])
    occurrence = pd.read_parquet(run_dir / "analysis" / "answer_occurrence.parquet")
    n_documents = json.loads((run_dir / "manifest.json").read_text())["counts"]["documents"]
    ks = sorted(int(v) for v in occurrence["k"].unique())
    k = findings_k(ks, n_documents)
    stated = int(re.search(r"the top (\d+) the occurrence finding uses", k_help(ks, n_documents)).group(1))
    records = json.loads((run_dir / "analysis" / "findings.json").read_text())["findings"]
    label = next(r["effect_label"] for r in records if r["name"] == "occurrence.answer")
    assert stated == k and label.endswith(f"in the top {k}")    # the page's default k is the finding's k
    small = k_help([50, 80], 80)      # an imported run of 80 documents: k = 80 would be x1 by definition
    assert int(re.search(r"the top (\d+),", small).group(1)) == findings_k([50, 80], 80) == 50
