"""Token-matched random k-sets (precompute.validation.sets): distinct documents, seeded, total tokens within the
stated tolerance of the ranked sets' mean, and closest-possible when the target is out of reach."""
import numpy as np

from precompute.validation import sets as validation_sets
from precompute.validation.sets import TOKEN_TOLERANCE, MethodSets


def test_random_sets_match_the_ranked_sets_tokens_within_the_tolerance():
    rng = np.random.default_rng(0)
    tokens = rng.integers(20, 400, size=3000).astype(np.float64)
    ranked = MethodSets("ekfac", "run", sets={f"q{i}": {"top": np.argsort(-tokens)[i * 10:(i + 1) * 10] + 0}
                                              for i in range(5)})
    target = validation_sets.ranked_set_tokens(ranked, tokens)
    assert target == np.mean([tokens[s["top"]].sum() for s in ranked.sets.values()])
    plain = validation_sets.random_sets(len(tokens), 10, 8, seed=3)
    matched = validation_sets.random_sets(len(tokens), 10, 8, seed=3, tokens=tokens, target=target)
    assert tokens[plain].sum(axis=1).mean() < 0.6 * target          # unmatched: the long ranked sets dominate
    assert np.all(np.abs(tokens[matched].sum(axis=1) - target) <= TOKEN_TOLERANCE * target)
    assert all(len(set(row)) == 10 for row in matched)
    again = validation_sets.random_sets(len(tokens), 10, 8, seed=3, tokens=tokens, target=target)
    assert np.array_equal(matched, again) and not np.array_equal(matched, plain)


def test_an_unreachable_target_gives_the_closest_set():
    tokens = np.arange(1.0, 51.0)                                   # the 5 longest documents total 240
    matched = validation_sets.random_sets(50, 5, 2, seed=1, tokens=tokens, target=1000.0)
    assert np.all(tokens[matched].sum(axis=1) >= 230)
