"""The kronfluence comparison (benchmarks.kronfluence) on tiny models, both worlds: the two score matrices
agree (asserted); the timings are printed, not asserted (benchmark figures come from the module's own command
line), except that the fit's stages and the forward+backward unit are measured and account for the fit."""
from transformers import AutoTokenizer

from benchmarks.kronfluence import compare, fit_cost, random_world, run_side, table, text_world


def assert_sides_agree(world, query_counts, **settings):
    sides = [run_side(side, world, query_counts, **settings) for side in ("ours", "kronfluence")]
    rows = compare(*sides)
    print("\n" + table(rows) + "\n" + fit_cost(sides[0][0]))
    assert [row["queries"] for row in rows] == query_counts
    for row in rows:
        assert row["pearson_min"] > 0.9999 and row["rel_err"] < 1e-4, row
        assert all(m["cpu_s"] > 0 and m["peak_mib"] > 0 for m in row["fit"] + row["score"])
    ours = sides[0][0]
    assert set(ours["fit_stages"]) == {"covariances", "eigendecomposition", "eigenvalue_correction"}
    assert ours["forward_backward"]["cpu_s"] > 0
    assert sum(stage["cpu_s"] for stage in ours["fit_stages"].values()) <= ours["fit"]["cpu_s"] * 1.01 + 0.01
    return sides


def test_scores_agree_with_kronfluence_at_matched_settings():
    world = random_world(width=32, layers=2, intermediate=64, vocab=128, n_documents=32, length=16, n_queries=6,
                         seed=0)
    assert_sides_agree(world, [3, 6], rank=4, batch_size=8, query_batch=3)


def test_text_world_documents_of_different_lengths_agree(world):
    """A model directory, a corpus and a queries file (the path `--model smollm2 --documents ...` takes): documents
    of different lengths sorted by length and padded per batch with the tokenizer's pad id, on both sides."""
    text = text_world(world["model"], world["corpus"], world["queries"], n_documents=16, max_length=24, n_queries=4)
    lengths = [len(d.input_ids) for d in text.documents]
    assert len(text.documents) == 16 and lengths == sorted(lengths) and len(set(lengths)) > 3
    assert text.pad_id == AutoTokenizer.from_pretrained(world["model"]).pad_token_id and len(text.queries) == 4
    assert_sides_agree(text, [2, 4], rank=4, batch_size=4, query_batch=2)
