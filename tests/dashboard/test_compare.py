"""Compare-runs numbers against direct recomputations: Pearson over shared documents, top-k overlap, each top
document's rank in the other run, findings side by side."""
import io

import numpy as np
import pandas as pd
import pytest

from dashboard.run import read_run
from dashboard.run_compare import findings_side_by_side, per_query_agreement, per_task, ranks_in, top_list


def test_agreement_matches_numpy(run_dir, second_run_dir):
    a, b = read_run(run_dir), read_run(second_run_dir)
    table = per_query_agreement(a.key, b.key, 50, a, b)
    shared = [q for q in a.queries["id"] if q in set(b.queries["id"])]
    assert table["query_id"].tolist() == shared and len(shared) > 0
    common = pd.Index(a.doc_ids).intersection(pd.Index(b.doc_ids))
    cols_a = pd.Index(a.doc_ids).get_indexer(common)
    cols_b = pd.Index(b.doc_ids).get_indexer(common)
    for query_id, pearson, overlap in table[["query_id", "pearson", "top_50_overlap"]].itertuples(index=False):
        x = np.asarray(a.scores[a.query_row(query_id)])[cols_a].astype(np.float64)
        y = np.asarray(b.scores[b.query_row(query_id)])[cols_b].astype(np.float64)
        assert pearson == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
        top_x, top_y = set(common[np.argsort(-x)[:50]]), set(common[np.argsort(-y)[:50]])
        assert overlap == pytest.approx(len(top_x & top_y) / 50)
    tasks = per_task(table, 50)
    expected = table.groupby("task")["pearson"].mean()
    assert dict(zip(tasks["task"], tasks["mean_pearson"])) == pytest.approx(expected.to_dict())


def test_ranks_in_the_other_run_match_a_full_sort(run_dir, second_run_dir):
    a, b = read_run(run_dir), read_run(second_run_dir)
    query_id = "q0004"
    listing = top_list(a, b, query_id, 10, pd.Series(["text"] * a.n_documents))
    values = np.asarray(b.scores[b.query_row(query_id)], dtype=np.float64)
    order = list(b.doc_ids[np.argsort(-values, kind="stable")])
    for doc_id, there, both in listing[["doc_id", "rank_other_run", "in_both_top"]].itertuples(index=False):
        if doc_id in set(b.doc_ids):
            assert there == order.index(doc_id) + 1
            assert both == (there <= 10)
        else:
            assert pd.isna(there) and not both
    assert (ranks_in(b, b.query_row(query_id), np.array(order[:5], dtype=object)) == [1, 2, 3, 4, 5]).all()


def test_findings_side_by_side_exports_numbers_in_their_own_columns():
    a = {"findings": [{"name": "correlation", "effect": 0.036, "ci_low": -0.025, "ci_high": 0.11, "n": 24,
                       "verdict": "not supported"}], "seed": 0}
    b = {"reasoning_correlates_more": True, "factual_mean_corr": 0.059, "notes": ["x"]}
    table = findings_side_by_side(a, b, "runs/a", "runs/b")
    read = pd.read_csv(io.StringIO(table.to_csv(index=False))).set_index("finding")
    assert read.loc["correlation", ["runs/a effect", "runs/a low", "runs/a high", "runs/a n"]].tolist() == [
        0.036, -0.025, 0.11, 24]
    assert read.loc["correlation", "runs/a verdict"] == "not supported"
    assert read.loc["factual_mean_corr", "runs/b effect"] == 0.059
    assert np.isnan(read.loc["correlation", "runs/b effect"])
    assert all(read[column].dtype.kind == "f" for column in read.columns if not column.endswith("verdict"))


def test_findings_side_by_side_keeps_both_runs_under_one_name():
    a = {"findings": [{"name": "correlation", "effect": 0.036, "ci_low": -0.025, "ci_high": 0.11, "n": 24,
                       "verdict": "not supported"}]}
    b = {"findings": [{"name": "correlation", "effect": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 20,
                       "verdict": "holds"}]}
    table = findings_side_by_side(a, b, "runs/demo", "runs/demo").set_index("finding")
    assert table.shape[1] == 10                              # effect, low, high, n, verdict for each run
    assert table.loc["correlation", ["runs/demo (this) effect", "runs/demo (other) effect"]].tolist() == [0.036, 0.5]
    assert table.loc["correlation", "runs/demo (other) verdict"] == "holds"


def test_compare_page_shows_both_runs_offered_under_one_name(app_args, run_dir):
    """The same run given twice ("DIR" and "DIR/"): both display as one name; the findings table keeps both."""
    from tests.dashboard.test_pages import assert_clean, open_page

    app_args(run_dir, f"{run_dir}/")
    at = open_page("compare")
    assert_clean(at)
    findings = next(frame.value for frame in at.dataframe if "finding" in frame.value and frame.value.shape[1] == 11)
    this = [c for c in findings.columns if c.endswith("(this) effect")]
    other = [c for c in findings.columns if c.endswith("(other) effect")]
    assert len(this) == len(other) == 1 and findings[this[0]].equals(findings[other[0]])


def test_overlap_sizes_stay_below_the_shared_documents_and_wrapped_prompts_are_counted():
    import pandas as pd

    from dashboard.published_view import shared_ids_with_other_prompt
    from dashboard.views.compare import overlap_ks

    assert overlap_ks(80) == [10, 50]          # top-100 of 80 shared documents would be all of them
    assert overlap_ks(9_000) == [10, 50, 100, 500, 1000]
    assert overlap_ks(5) == [10]
    a = pd.DataFrame({"id": ["q1", "q2", "q3"], "prompt": ["What is 2+2?", "Capital of X?", "Only here"]})
    b = pd.DataFrame({"id": ["q1", "q2", "q4"], "prompt": ["what is  2+2?", "<|user|>Capital of X?", "Other"]})
    assert shared_ids_with_other_prompt(a, b) == 1   # q1 equal up to case and spaces; q2 wrapped; q3, q4 not shared


def test_second_run_defaults_to_one_sharing_queries(tmp_path):
    from dashboard.views.compare import first_sharing_queries
    from precompute import rundir
    choices = []
    for name, ids in (("published", ["slope-1", "fact-2"]), ("broken", None), ("identity", ["q0", "q9"])):
        path = tmp_path / name
        path.mkdir()
        if ids is None:
            (path / rundir.QUERIES).write_text("{not json\n")
        else:
            rundir.write_jsonl(str(path / rundir.QUERIES), [{"id": i} for i in ids])
        choices.append(str(path))
    assert first_sharing_queries(choices, {"q0", "q1"}) == choices[2]
    assert first_sharing_queries(choices, {"nothing"}) == choices[0]


def test_finding_differences_are_the_analysis_layers_on_the_runs_tables(run_dir, second_run_dir):
    from dashboard.run_compare import finding_differences
    from precompute.analysis.run_difference import TABLES
    from precompute.analysis.run_difference import finding_differences as expected_differences

    a, b = read_run(run_dir), read_run(second_run_dir)
    shown = finding_differences(a.key, b.key)
    expected = expected_differences(*[{name: pd.read_parquet(run / "analysis" / f"{name}.parquet") for name in TABLES}
                                      for run in (run_dir, second_run_dir)])
    assert len(shown) > 0 and "magnitude.per_nat_top1" in set(shown["finding"])
    pd.testing.assert_frame_equal(shown, expected)
    read = pd.read_csv(io.StringIO(shown.to_csv(index=False)))   # the CSV export: numbers in their own columns
    assert all(read[c].dtype.kind == "f" for c in ("effect_a", "effect_b", "contrast", "ci_low", "ci_high"))
    differences = read[read["measure"] == "difference"]
    np.testing.assert_allclose(differences["contrast"], differences["effect_a"] - differences["effect_b"])
    ratios = read[read["measure"] == "ratio"]
    np.testing.assert_allclose(ratios["contrast"], ratios["effect_a"] / ratios["effect_b"])
