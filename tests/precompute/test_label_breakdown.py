"""Labels as a document column: the source multipliers' code path on a planted column; the labelled random sample."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from precompute.analysis import label_breakdown
from precompute.rundir import labels as run_labels
from tests.precompute.test_analysis import analyze, make_inputs


def planted_inputs():
    rng = np.random.default_rng(5)
    n_docs = 120
    sources = np.array(["web", "code", "wiki"])[rng.integers(0, 3, n_docs)]
    scores = rng.standard_normal((6, n_docs)).astype(np.float32)
    scores[:3] += (sources == "code") * 1.5
    return make_inputs(scores, ["arithmetic"] * 3 + ["factual"] * 3, list(sources), ["text"] * n_docs), sources


def test_planted_label_column_gives_the_source_multipliers():
    inputs, sources = planted_inputs()
    expected = analyze(inputs)["source_multipliers"]
    same_path = label_breakdown.column_multipliers(inputs, "source", sources, n_resamples=200)
    pd.testing.assert_frame_equal(same_path.drop(columns="column").rename(columns={"category": "source"}), expected)
    labels = run_labels.Labels(label_set=("code", "web", "wiki"),
                               labels={f"d{j}": s for j, s in enumerate(sources)})
    by_label = label_breakdown.label_multipliers(inputs, labels, n_resamples=200)
    for column in ("task", "side", "k", "count", "share", "base_share", "multiplier", "chance_low", "chance_high"):
        assert by_label[column].tolist() == pytest.approx(expected[column].tolist(), nan_ok=True) \
            if by_label[column].dtype.kind == "f" else by_label[column].tolist() == expected[column].tolist()
    assert by_label["category"].tolist() == expected["source"].tolist()


def test_sample_comparison_by_hand():
    inputs, _ = planted_inputs()
    top = label_breakdown.task_top_documents(inputs, "arithmetic", 5)
    top_ids = [f"d{j}" for j in top]
    labelled = {doc: ("teaches the procedure" if i % 3 else "unrelated") for i, doc in enumerate(top_ids)}
    sample = ["d100", "d101", "d102", "d103"]
    labelled.update({"d100": "teaches the procedure", "d101": "unrelated", "d102": "unrelated", "d103": "unrelated"})
    labels = run_labels.Labels(labels=labelled, sample=tuple(sample))
    table = label_breakdown.sample_comparison(inputs, labels, 5)
    pd.testing.assert_frame_equal(label_breakdown.sample_comparison(
        inputs, labels, 5, label_breakdown.task_tops(inputs, 5)), table)      # the tops kept across revisions
    row = table[(table["task"] == "arithmetic") & (table["label"] == "teaches the procedure")].iloc[0]
    assert not set(sample) & set(top_ids)
    a = sum(1 for i in range(len(top_ids)) if i % 3)
    n_a = len(top_ids)
    assert row["top_labelled"] == n_a and row["top_with_label"] == a
    assert row["sample_labelled"] == 4 and row["sample_with_label"] == 1
    assert row["ratio"] == pytest.approx((a / n_a) / 0.25)
    assert row["p_value"] == pytest.approx(stats.fisher_exact([[a, n_a - a], [1, 3]]).pvalue)
    assert row["sample_ci_low"] == pytest.approx(stats.beta.ppf(0.025, 1, 4))
    assert row["sample_ci_high"] == pytest.approx(stats.beta.ppf(0.975, 2, 3))


def test_sparse_counts_equal_the_full_ranking_with_ties_and_nan():
    from precompute.analysis.context import AnalysisContext, RowView
    from precompute.analysis.tables import breakdowns
    rng = np.random.default_rng(9)
    n = 700
    values = np.round(rng.standard_normal(n), 1).astype(np.float32)      # many ties
    values[[3, 50]] = np.nan
    codes = np.where(rng.random(n) < 0.1, rng.integers(0, 3, n), 3)     # 3 = background (unlabelled)
    codes[[3, 4]] = 1
    inputs = make_inputs(values[None, :], ["t"], ["web"] * n, ["x"] * n)
    ctx = AnalysisContext(inputs, progress=False)
    ctx.categorical = {"c": (codes.astype(np.int64), ["a", "b", "c", "(unlabelled)"])}
    for row in (values, np.nan_to_num(values)):                        # with NaN, and ties only
        full = breakdowns.category_counts(ctx, RowView(0, row))["c"]
        sparse = label_breakdown.sparse_category_counts(row, codes, 4, 3, breakdowns.multiplier_ks(n))
        for side in ("top", "bottom"):
            assert np.array_equal(sparse[side], full[side]), side
    for k in (1, 3, 77):
        expected_top = np.bincount(codes[np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:k]],
                                   minlength=4)
        assert np.array_equal(label_breakdown.sparse_category_counts(values, codes, 4, 3, [k])["top"][0],
                              expected_top)


def test_label_multipliers_with_unlabelled_documents_equal_the_full_path():
    inputs, sources = planted_inputs()
    labelled = {f"d{j}": s for j, s in enumerate(sources) if j % 4 == 0}
    labels = run_labels.Labels(label_set=("code", "web", "wiki"), labels=labelled)
    values, _ = run_labels.label_column(labels, inputs.documents["id"])
    fast = label_breakdown.label_multipliers(inputs, labels, n_resamples=200)
    full = label_breakdown.column_multipliers(inputs, "label", values, n_resamples=200)
    pd.testing.assert_frame_equal(fast, full)


def test_rank_cutoffs_table_gives_the_same_counts_and_multipliers():
    """analyze's rank_cutoffs table read back equals row_cutoffs; with it only the labelled documents' scores
    are read, and the multipliers equal the full ranking's; a table of other queries or ks is not used."""
    from precompute.analysis.tables import breakdowns
    inputs, sources = planted_inputs()
    inputs.scores[1, 10:40] = inputs.scores[1, 10]                      # ties at the top of one row
    inputs.scores[2, 50:60] = np.nan
    ids = [q["id"] for q in inputs.queries]
    ks = breakdowns.multiplier_ks(len(sources))
    table = analyze(inputs)["rank_cutoffs"]
    cutoffs = label_breakdown.cutoffs_from_table(table, ids, ks)
    for (threshold, last), row in zip(cutoffs, inputs.scores):
        expected_threshold, expected_last = label_breakdown.row_cutoffs(row, ks)
        np.testing.assert_array_equal(threshold, expected_threshold)
        np.testing.assert_array_equal(last, expected_last)
    labelled = {f"d{j}": s for j, s in enumerate(sources) if j % 5 == 0 or 10 <= j < 40}
    values, _ = run_labels.label_column(run_labels.Labels(label_set=("code", "web", "wiki"), labels=labelled),
                                        inputs.documents["id"])
    fast = label_breakdown.column_multipliers(inputs, "label", values, n_resamples=200,
                                              background=run_labels.UNLABELLED, cutoffs=cutoffs)
    full = label_breakdown.column_multipliers(inputs, "label", values, n_resamples=200)
    pd.testing.assert_frame_equal(fast, full)
    assert label_breakdown.cutoffs_from_table(table[table["query_id"] != "q0"], ids, ks) is None
    assert label_breakdown.cutoffs_from_table(table, ids, [50]) is None
    assert label_breakdown.query_cutoffs(inputs, None)[1][1].tolist() == cutoffs[1][1].tolist()


def test_label_column_looks_up_only_the_labelled_documents_with_the_same_result():
    """label_column (a run's Index of ids, or any sequence of ids) equals mapping every id through the labels."""
    rng = np.random.default_rng(3)
    ids = np.array([f"d{i}" for i in range(3000)], dtype=object)
    chosen = rng.choice(len(ids), size=40, replace=False)
    labelled = {f"d{c}": str(rng.choice(["a", "b"])) for c in chosen} | {"gone": "a"}
    labels = run_labels.Labels(label_set=("a", "b"), labels=labelled)
    for given in (ids, pd.Index(ids), list(ids), np.arange(3000), np.array(["d1", "d1", "d7"], dtype=object)):
        expected = pd.Series(given, dtype=object).astype(str).map(labelled).fillna(run_labels.UNLABELLED).tolist()
        assert run_labels.label_column(labels, given) == (expected, sorted(set(expected)))
    every = run_labels.Labels(labels={d: "a" for d in ids})
    assert run_labels.label_column(every, pd.Index(ids)) == (["a"] * len(ids), ["a"])


def test_string_codes_equal_factorizing_every_value_as_a_string():
    mixed = [1, "1", "b", None, float("nan"), "a", 2.5, "a"]
    for values in (["web", "code", "web", "wiki"], list(np.array(["z", "y", "z"], dtype=object)), [3, 1, 2, 1],
                   mixed, mixed[:3], [None, "a"], []):
        codes, names = pd.factorize(pd.Series(list(values), dtype=object).astype(str), sort=True)
        got_codes, got_names = label_breakdown.string_codes(values)
        assert got_codes.tolist() == codes.tolist() and got_names == [str(n) for n in names], values
