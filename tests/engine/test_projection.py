"""Compressed gradients for the ask index (engine/projection.py) against explicit autograd gradients.

- the per-token path Σ_t (Π_out g_t)(Π_in a_t)ᵀ equals Π_out G Π_inᵀ of the explicit gradient;
- gaussian projections are unbiased: the mean over seeds of the projected inner product matches the exact
  ⟨P(G_q), G_d⟩ (P from EK-FAC factors, dense solve);
- the eigen projection is the exact score restricted to a block of the eigenbasis, and the full score when
  every direction is kept;
- the scoring pass with compressors (score --index) scores as without them and stores what the index's own
  pass stores.
"""
import math

import numpy as np
import pytest
import torch

from engine.batches import make_batches
from engine.factors import A_VECS, LAMBDA, S_VECS, FactorArguments, fit_factors
from engine.lowrank import compress_documents, lowrank_whitened, score_block
from engine.model import find_tracked_modules
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.projection import (Projection, build_projection, eigen_weights, gaussian_projection, module_dims,
                               project_documents)
from engine.scoring import score_documents
from tests.engine.test_identity import explicit_gradient, random_documents, random_queries, tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def setup():
    model = tiny_gpt2()  # float64, Conv1D layers with a bias (the appended 1 in a)
    tracked = find_tracked_modules(model, "mlp")
    docs, queries = random_documents(8), random_queries(2)
    factors = fit_factors(model, tracked, make_batches(docs, 3, 0), FactorArguments("ekfac", "empirical"),
                          progress=False)
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    doc_grads = [explicit_gradient(model, tracked, doc)[0] for doc in docs]
    return model, tracked, docs, queries, factors, grads, doc_grads


def exact_scores(pq, doc_grads) -> torch.Tensor:
    """[Q, D] Σ_modules ⟨P(G_q), G_d⟩ from the dense preconditioned gradients and explicit document gradients."""
    return torch.stack([sum((pq.dense(n, "cpu", torch.float64) * g[n]).sum(dim=(1, 2)) for n in pq.modules)
                        for g in doc_grads], dim=1)


def projected_documents(projection: Projection, doc_grads) -> torch.Tensor:
    """[D, total_dim]: Π_out G_d Π_inᵀ of each explicit gradient, concatenated in module order."""
    return torch.stack([torch.cat([(projection.outs[n].double() @ g[n] @ projection.ins[n].double().t()).flatten()
                                   for n in projection.modules]) for g in doc_grads])


def test_module_dims_share_the_budget():
    shapes = {"a": (384, 128), "b": (128, 384), "c": (6, 1000), "d": (3, 2)}
    dims = module_dims(shapes, 4096)
    assert dims["d"] == (3, 2)               # the whole gradient fits in its share; the other three split the rest
    assert dims["c"] == (6, 227)             # d_out capped at 6: k_in takes the rest of its 1363 share
    assert dims["a"] == (36, 36) and dims["b"] == (36, 36)
    assert sum(math.prod(k) for k in dims.values()) <= 4096


def test_per_token_projection_equals_projected_explicit_gradient(setup):
    model, tracked, docs, _, factors, _, doc_grads = setup
    projection = gaussian_projection({n: tuple(factors.shapes[n]) for n in factors.modules}, dim=64, seed=3)
    vectors = torch.zeros(len(docs), projection.total_dim, dtype=torch.float64)
    for index, block in project_documents(model, tracked, projection, make_batches(docs, 3, 0), progress=False):
        vectors[index] = block.double()
    expected = projected_documents(projection, doc_grads)
    # the engine projects in the model's dtype (float64 here) from float32 matrices and returns float32
    assert float((vectors - expected).norm() / expected.norm()) < 1e-6


def test_gaussian_projection_is_unbiased(setup):
    _, tracked, _, _, factors, grads, doc_grads = setup
    pq = precondition(grads, factors, QueryArguments(rank=None))
    exact = exact_scores(pq, doc_grads).numpy()
    shapes = {n: tuple(factors.shapes[n]) for n in factors.modules}
    estimates = []
    for seed in range(2000):
        projection = gaussian_projection(shapes, dim=512, seed=seed)
        estimates.append((projection.query_vectors(pq).double() @ projected_documents(projection, doc_grads).t())
                         .numpy())
    estimates = np.stack(estimates)            # [seeds, Q, D]
    mean, error = estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / math.sqrt(len(estimates))
    assert (estimates.std(axis=0) > 0.5 * np.abs(exact)).all()   # one projection alone is far from exact...
    assert np.all(np.abs(mean - exact) < 4.5 * error)           # ...the mean over seeds is not (no bias)
    assert np.corrcoef(mean.ravel(), exact.ravel())[0, 1] > 0.9


def test_seeded_projection_is_reproducible_and_seeds_differ(setup):
    factors = setup[4]
    shapes = {n: tuple(factors.shapes[n]) for n in factors.modules}
    first, again, other = (gaussian_projection(shapes, 32, seed) for seed in (5, 5, 6))
    assert not any(torch.equal(first.outs[name], other.outs[name]) for name in shapes)
    for name in shapes:
        assert torch.equal(first.outs[name], again.outs[name])
        assert first.outs[name].shape[1] == shapes[name][0] and first.ins[name].shape[1] == shapes[name][1]


@pytest.mark.parametrize("rank", [None, 2])
def test_eigen_projection_with_every_direction_is_the_full_score(setup, rank):
    model, tracked, docs, _, factors, grads, _ = setup
    pq = precondition(grads, factors, QueryArguments(rank=rank))
    full = sum(math.prod(factors.shapes[n]) for n in factors.modules)
    projection = build_projection("eigen", factors, dim=full)
    assert projection.total_dim == full
    vectors = torch.zeros(len(docs), full)
    for index, block in project_documents(model, tracked, projection, make_batches(docs, 3, 0), progress=False):
        vectors[index] = block
    scores = torch.zeros(pq.n_queries, len(docs), dtype=torch.float64)
    for result in score_documents(model, tracked, pq, make_batches(docs, 3, 0), progress=False):
        scores[:, result.index] = result.scores.double()
    estimate = projection.query_vectors(pq).double() @ vectors.double().t()
    assert float((estimate - scores).norm() / scores.norm()) < 1e-4


def test_eigen_projection_is_the_score_on_its_block(setup):
    _, _, _, _, factors, grads, doc_grads = setup
    pq = precondition(grads, factors, QueryArguments(rank=None))
    projection = build_projection("eigen", factors, dim=4 * len(factors.modules))
    estimate = projection.query_vectors(pq).double() @ projected_documents(projection, doc_grads).t()
    expected = torch.zeros_like(estimate)
    for name in factors.modules:
        f = factors.tensors[name]
        s_vecs, a_vecs, lam = f[S_VECS].double(), f[A_VECS].double(), f[LAMBDA].double()
        # which eigen-directions the block kept, found from the matrices themselves
        rows = (projection.outs[name].double() @ s_vecs).abs().argmax(dim=1)
        columns = (projection.ins[name].double() @ a_vecs).abs().argmax(dim=1)
        kept = torch.zeros_like(lam, dtype=torch.bool)
        kept[rows[:, None], columns[None, :]] = True
        weights = eigen_weights(f, "ekfac", "auto")
        assert weights[kept].mean() >= weights.mean()     # the block holds the heavier directions
        damping = 0.1 * float(lam.mean())
        rotated_q = s_vecs.t() @ grads[name] @ a_vecs
        for d, g in enumerate(doc_grads):
            rotated_d = s_vecs.t() @ g[name] @ a_vecs
            expected[:, d] += ((rotated_q * rotated_d / (lam + damping)) * kept).sum(dim=(1, 2))
    assert float((estimate - expected).norm() / expected.norm()) < 1e-5


def test_tiny_llama_float32_projection_runs_without_padding_leaks():
    """Padding positions contribute nothing: a document's vector does not depend on its batch-mates."""
    model = tiny_llama(dtype=torch.float32)
    tracked = find_tracked_modules(model, "mlp")
    docs = random_documents(5)
    shapes = {n: tuple(int(x) for x in (m.weight.shape[0], m.weight.shape[1])) for n, m in tracked.items()}
    projection = gaussian_projection(shapes, dim=96, seed=0)
    alone = torch.cat([block for _, block in project_documents(model, tracked, projection,
                                                                  make_batches(docs, 1, 0), progress=False)])
    batched = torch.zeros_like(alone)
    for index, block in project_documents(model, tracked, projection, make_batches(docs, 5, 0), progress=False):
        batched[index] = block
    assert float((alone - batched).norm() / alone.norm()) < 1e-5


# ---------------------------------------------------------------- the low-rank whitened compression

@pytest.mark.parametrize("rank", [None, 3])
def test_lowrank_with_full_rank_is_the_exact_score(setup, rank):
    """Rank ≥ min(d_out, d_in'): the stored factors are exact, so the estimate equals scoring's scores."""
    model, tracked, docs, _, factors, grads, _ = setup
    pq = precondition(grads, factors, QueryArguments(rank=rank))
    compressor = lowrank_whitened(factors, rank=max(min(s) for s in factors.shapes.values()),
                                  query_factor_rank=None)  # the whitened queries exact too
    vectors = torch.zeros(len(docs), compressor.total_dim)
    for index, (block,) in compress_documents(model, tracked, [compressor], make_batches(docs, 3, 0), progress=False):
        vectors[index] = block
    scores = torch.zeros(pq.n_queries, len(docs), dtype=torch.float64)
    for result in score_documents(model, tracked, pq, make_batches(docs, len(docs), 0), progress=False):
        scores[:, result.index] = result.scores.double()
    estimate = score_block(compressor, vectors, compressor.query_factors(pq)).double()
    assert float((estimate - scores).norm() / scores.norm()) < 1e-4


def test_lowrank_factors_are_the_best_rank_r_whitened_approximation(setup):
    """Rank 2 from the randomized per-token range finder is as close to L G_d Rᵀ (explicit) as its truncated SVD."""
    model, tracked, docs, _, factors, _, doc_grads = setup
    compressor = lowrank_whitened(factors, rank=2)
    vectors = torch.cat([block for _, (block,) in compress_documents(model, tracked, [compressor],
                                                                    make_batches(docs, 1, 0), progress=False)])
    for d, g in enumerate(doc_grads):
        for name, part in compressor.slices().items():
            d_out, d_in = compressor.shape(name)
            whitened = compressor.left[name].double() @ g[name] @ compressor.right[name].double().t()
            u, sigma, vh = torch.linalg.svd(whitened)
            best = (u[:, :2] * sigma[:2]) @ vh[:2]
            stored = vectors[d, part].double()
            approx = stored[:2 * d_out].reshape(2, d_out).t() @ stored[2 * d_out:].reshape(2, d_in)
            # near-optimal (the randomized range finder's guarantee): residual within 5% of the SVD's
            assert float((whitened - approx).norm()) <= 1.05 * float((whitened - best).norm()) + 1e-9, name


def test_scoring_pass_compresses_like_its_own_pass(setup):
    """score_documents with compressors: the same scores as without, and per compressor the vectors of
    compress_documents (same batches) — for the projection also Π_out G_d Π_inᵀ of the explicit gradient."""
    model, tracked, docs, _, factors, grads, doc_grads = setup
    pq = precondition(grads, factors, QueryArguments(rank=2))
    compressors = [lowrank_whitened(factors, rank=2), gaussian_projection(factors.shapes, 24, seed=3)]
    plain = {tuple(r.index): r for r in score_documents(model, tracked, pq, make_batches(docs, 3, 0), progress=False)}
    alone = {tuple(index): blocks for index, blocks in compress_documents(model, tracked, compressors,
                                                                          make_batches(docs, 3, 0), progress=False)}
    together = list(score_documents(model, tracked, pq, make_batches(docs, 3, 0), progress=False,
                                    compressors=compressors))
    assert sorted(tuple(r.index) for r in together) == sorted(plain) == sorted(alone)
    for result in together:
        torch.testing.assert_close(result.scores, plain[tuple(result.index)].scores, rtol=0, atol=0)
        for mine, theirs in zip(result.vectors, alone[tuple(result.index)]):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
        explicit = projected_documents(compressors[1], [doc_grads[i] for i in result.index])
        torch.testing.assert_close(result.vectors[1].double(), explicit, rtol=1e-4,
                                   atol=1e-6 * float(explicit.abs().max()))
