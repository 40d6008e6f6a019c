"""docs/run-directory.md holds exactly the analysis section rendered from the registry, and the registry is what
the analysis writes (every table module registers its columns; a finding record has the documented fields)."""
import os

import numpy as np

from precompute import analysis
from precompute.analysis import docs, multiplicity, statistics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_run_directory_doc_has_the_rendered_analysis_section():
    text = open(os.path.join(ROOT, "docs", "run-directory.md"), encoding="utf-8").read()
    assert text.count(docs.START) == 1 and text.count(docs.END) == 1
    section = text[text.index(docs.START):text.index(docs.END) + len(docs.END)]
    assert section == docs.render(), "run `python -m precompute analysis-docs --write docs/run-directory.md`"


def test_every_registered_table_is_documented_with_its_columns():
    rendered = docs.render()
    for spec in analysis.registered_tables():
        assert f"### `{spec.name}.parquet`" in rendered
        assert all(f"| `{column}` |" in rendered for column in spec.columns)
    assert analysis.TABLE_NAMES == tuple(spec.name for spec in analysis.registered_tables())
    assert {"top_docs", "correlations", "task_correlations", "magnitude", "magnitude_by_task", "power_law",
            "answer_occurrence", "answer_rates", "source_multipliers", "layer_share"} <= set(analysis.TABLE_NAMES)


def test_finding_records_have_exactly_the_documented_fields():
    finding = statistics.Finding(name="n", claim="c", effect_label="e", paper_direction="greater",
                                 measure="difference", effect=0.1, ci_low=0.0, ci_high=0.2, p_value=0.5,
                                 p_value_method="m", n=3)
    assert set(multiplicity.adjust_for_multiplicity([finding.record()])[0]) == set(docs.FINDING_FIELDS)
    assert np.isfinite(finding.record()["effect"])
