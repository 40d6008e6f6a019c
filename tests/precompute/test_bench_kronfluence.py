"""The kronfluence comparison (benchmarks.kronfluence) on a tiny random Llama: the two score matrices agree
(asserted); the timings are printed, not asserted (benchmark figures come from the module's own command line)."""
from benchmarks.kronfluence import compare, random_world, run_side, table


def test_scores_agree_with_kronfluence_at_matched_settings():
    world = random_world(width=32, layers=2, intermediate=64, vocab=128, n_documents=32, length=16, n_queries=6,
                         seed=0)
    sides = [run_side(side, world, [3, 6], rank=4, batch_size=8, query_batch=3) for side in ("ours", "kronfluence")]
    rows = compare(*sides)
    print("\n" + table(rows))
    assert [row["queries"] for row in rows] == [3, 6]
    for row in rows:
        assert row["pearson_min"] > 0.9999 and row["rel_err"] < 1e-4, row
        assert all(m["cpu_s"] > 0 and m["peak_mib"] > 0 for m in row["fit"] + row["score"])
