"""Per-token scores in batches (split_by_token) == an explicit per-token oracle == the one-document path, and
each document's tokens sum to its score from the scoring pass, for the queries each document is split for."""
import pytest
import torch

from engine.model import find_tracked_modules
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.batches import make_batches
from engine.scoring import score_documents, split_by_token, token_scores
from tests.engine.test_identity import random_documents, random_queries, rel_err, tiny_gpt2, tiny_llama
from tests.engine.test_scoring import fit


def explicit_token_scores(model, tracked, pq, doc) -> torch.Tensor:
    """[Q, T]: Σ_modules g_tᵀ P_q a_t from plain autograd on the document alone (a with a 1 for a bias)."""
    inputs, outputs = {}, {}

    def keep(name):
        def hook(module, args, output):
            output.retain_grad()
            inputs[name], outputs[name] = args[0], output
        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in tracked.items()]
    logits = model(input_ids=torch.tensor([doc.input_ids])).logits[0]
    torch.nn.functional.cross_entropy(logits, torch.tensor(doc.labels), ignore_index=-100, reduction="sum").backward()
    for handle in handles:
        handle.remove()
    model.zero_grad(set_to_none=True)
    out = torch.zeros(pq.n_queries, len(doc.input_ids), dtype=torch.float64)
    for name in pq.modules:
        a, g = inputs[name][0].detach().double(), outputs[name].grad[0].double()
        if tracked[name].bias is not None:
            a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], dim=1)
        p = pq.dense(name, "cpu", torch.float64)                      # [Q, d_out, d_in']
        out += torch.stack([((g @ p[q]) * a).sum(dim=1) for q in range(pq.n_queries)])
    return out


@pytest.mark.parametrize("build,rank", [(tiny_llama, 3), (tiny_llama, None), (tiny_gpt2, 3)])
def test_batched_token_scores_equal_the_one_document_path_and_sum_to_scores(build, rank):
    model = build()
    tracked = find_tracked_modules(model, "all")
    queries, docs = random_queries(5), random_documents(9, low=3, high=20)
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=rank))
    totals = torch.zeros(len(queries), len(docs), dtype=torch.float64)      # [Q, D] from the scoring pass
    for result in score_documents(model, tracked, pq, make_batches(docs, 3, 0), progress=False):
        totals[:, result.index] = result.layer_scores.double().sum(dim=1)
    rows = [[4, 0], [], [1], [0, 1, 2, 3, 4], [3], [2, 4], [0], [4, 3, 2], [1, 3]]   # per document, any order
    seen = {}
    for d, per_token in split_by_token(model, tracked, pq, docs, rows, batch_size=4, pad_id=0):
        assert d not in seen and per_token.dtype == torch.float32
        seen[d] = per_token.double()
    assert sorted(seen) == [d for d in range(len(docs)) if rows[d]]   # every document once; none without rows
    for d, per_token in seen.items():
        expected = explicit_token_scores(model, tracked, pq, docs[d])[rows[d]]
        assert per_token.shape == (len(rows[d]), len(docs[d].input_ids))
        assert rel_err(per_token, expected) < 1e-6
        one_document = token_scores(model, tracked, pq, docs[d]).double()[rows[d]]
        assert rel_err(per_token, one_document) < 1e-6
        assert rel_err(per_token.sum(dim=1), totals[rows[d], d]) < 1e-6
    assert max(per_token.abs().max() for per_token in seen.values()) > 0


def test_all_queries_when_no_rows_are_given():
    model = tiny_llama()
    tracked = find_tracked_modules(model)
    queries, docs = random_queries(3), random_documents(5)
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=2))
    results = dict(split_by_token(model, tracked, pq, docs, batch_size=2))
    assert sorted(results) == list(range(len(docs)))
    for d, doc in enumerate(docs):
        assert rel_err(results[d].double(), explicit_token_scores(model, tracked, pq, doc)) < 1e-6
