"""Queries preconditioned batch by batch (engine.query_stream) equal the all-at-once path, low-rank and dense."""
import pytest
import torch

from engine.batches import make_batches
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.query_stream import preconditioned_queries
from engine.scoring import score_documents
from tests.engine.test_identity import random_documents, random_queries, tiny_llama


@pytest.mark.parametrize("rank", [2, None])
def test_batches_of_queries_give_the_all_at_once_result(rank):
    model = tiny_llama(dtype=torch.float64)
    tracked = find_tracked_modules(model, "mlp")
    docs, queries = random_documents(6), random_queries(5)
    factors = fit_factors(model, tracked, make_batches(docs, 3, 0), FactorArguments(strategy="ekfac",
                                                                                    fisher="empirical"),
                          progress=False)
    args = QueryArguments(damping="auto", rank=rank)
    grads, nats = query_gradients(model, tracked, queries, batch_size=5)
    whole = precondition(grads, factors, args)
    streamed, streamed_nats = preconditioned_queries(model, tracked, queries, factors, args, batch_size=2)
    assert streamed.n_queries == 5 and torch.allclose(streamed_nats, nats)
    assert streamed.damping == whole.damping
    for name in tracked:
        assert streamed.is_low_rank(name) == whole.is_low_rank(name) == (rank is not None)
        assert torch.allclose(streamed.dense(name, "cpu", torch.float64), whole.dense(name, "cpu", torch.float64),
                              rtol=1e-9, atol=1e-12)
    (a,) = score_documents(model, tracked, whole, make_batches(docs, 6, 0), progress=False)
    (b,) = score_documents(model, tracked, streamed, make_batches(docs, 6, 0), progress=False)
    assert torch.allclose(a.scores, b.scores, rtol=1e-9, atol=1e-12)
