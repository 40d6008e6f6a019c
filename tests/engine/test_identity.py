"""identity strategy == explicit per-document autograd gradient dot products (float64, rel err < 1e-5)."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from engine.batches import IGNORE, Tokenized, make_batches
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules, is_conv1d
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import score_documents, token_scores

VOCAB = 61


def tiny_llama(dtype=torch.float64, seed=0, hidden=16, layers=2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=24, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False, pad_token_id=0)
    return LlamaForCausalLM(config).to(dtype).eval()


def tiny_gpt2(dtype=torch.float64, seed=0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=0,
                        bos_token_id=1, eos_token_id=1)
    return GPT2LMHeadModel(config).to(dtype).eval()


def random_documents(n: int, seed: int = 1, low: int = 3, high: int = 12) -> list[Tokenized]:
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        length = int(torch.randint(low, high, (1,), generator=g))
        ids = torch.randint(1, VOCAB, (length,), generator=g).tolist()
        docs.append(Tokenized(ids, ids[1:] + [IGNORE], False))
    return docs


def random_queries(n: int, seed: int = 2) -> list[Tokenized]:
    g = torch.Generator().manual_seed(seed)
    queries = []
    for _ in range(n):
        prompt = torch.randint(1, VOCAB, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
        completion = torch.randint(1, VOCAB, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g).tolist()
        ids = prompt + completion
        labels = [IGNORE] * (len(prompt) - 1) + completion + [IGNORE]
        queries.append(Tokenized(ids, labels, False))
    return queries


def explicit_gradient(model, tracked, item: Tokenized) -> tuple[dict[str, torch.Tensor], float]:
    """Autograd gradient of Σ NLL over the item's targets, per module as [d_out, d_in(+1 bias)]; and the NLL."""
    model.zero_grad(set_to_none=True)
    ids = torch.tensor([item.input_ids])
    logits = model(input_ids=ids).logits[0]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(item.labels), ignore_index=IGNORE, reduction="sum")
    loss.backward()
    grads = {}
    for name, module in tracked.items():
        weight = module.weight.grad.t() if is_conv1d(module) else module.weight.grad
        parts = [weight] + ([module.bias.grad[:, None]] if module.bias is not None else [])
        grads[name] = torch.cat(parts, dim=1).detach().clone()
    model.zero_grad(set_to_none=True)
    return grads, loss.item()


def explicit_scores(model, tracked, queries, docs):
    """[Q, L, D] per-layer ⟨G_q, G_d⟩ and [D] gradient norms from autograd."""
    q_grads = [explicit_gradient(model, tracked, q)[0] for q in queries]
    d_grads = [explicit_gradient(model, tracked, d)[0] for d in docs]
    layers = torch.tensor([[[float((gq[n] * gd[n]).sum()) for gd in d_grads] for n in tracked] for gq in q_grads],
                          dtype=torch.float64)
    norms = torch.tensor([float(sum(gd[n].square().sum() for n in tracked)) for gd in d_grads]).sqrt()
    return layers, norms


def engine_scores(model, tracked, queries, docs, strategy="identity", rank=None, batch_size=3):
    factors = fit_factors(model, tracked, make_batches(docs, batch_size, 0), FactorArguments(strategy=strategy),
                          progress=False)
    grads, nats = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, factors, QueryArguments(rank=rank))
    layer = torch.zeros(len(queries), len(tracked), len(docs), dtype=torch.float64)
    norms = torch.zeros(len(docs), dtype=torch.float64)
    for result in score_documents(model, tracked, pq, make_batches(docs, batch_size, 0), progress=False):
        layer[:, :, result.index] = result.layer_scores.double()
        norms[result.index] = result.grad_norms.double()
    return layer, norms, pq, grads, nats


def rel_err(x, y) -> float:
    return float((x - y).norm() / y.norm())


@pytest.mark.parametrize("build,spec", [(tiny_llama, "mlp"), (tiny_llama, "all"), (tiny_gpt2, "mlp"),
                                        (tiny_gpt2, "all")])
def test_identity_equals_explicit_gradient_dot_products(build, spec):
    model = build()
    tracked = find_tracked_modules(model, spec)
    queries, docs = random_queries(3), random_documents(7)
    expected_layers, expected_norms = explicit_scores(model, tracked, queries, docs)
    layers, norms, pq, _, _ = engine_scores(model, tracked, queries, docs)
    assert rel_err(layers, expected_layers) < 1e-5
    assert rel_err(layers.sum(1), expected_layers.sum(1)) < 1e-5
    assert rel_err(norms, expected_norms) < 1e-5
    assert pq.damping == {name: 0.0 for name in tracked}


def test_query_gradients_and_nats_match_autograd():
    model = tiny_gpt2()  # Conv1D with bias: checks the transposed weight and the appended 1
    tracked = find_tracked_modules(model, "all")
    queries = random_queries(4)
    grads, nats = query_gradients(model, tracked, queries, batch_size=3)
    for q, query in enumerate(queries):
        expected, loss = explicit_gradient(model, tracked, query)
        assert nats[q].item() == pytest.approx(loss, rel=1e-10)
        for name in tracked:
            assert grads[name].shape[1:] == expected[name].shape
            assert rel_err(grads[name][q], expected[name]) < 1e-10


def test_token_scores_identity_match_explicit_per_token_split():
    model = tiny_llama()
    tracked = find_tracked_modules(model)
    queries, docs = random_queries(2), random_documents(2)
    _, _, pq, _, _ = engine_scores(model, tracked, queries, docs)
    expected_layers, _ = explicit_scores(model, tracked, queries, docs)
    for d, doc in enumerate(docs):
        per_token = token_scores(model, tracked, pq, doc).double()
        assert per_token.shape == (len(queries), len(doc.input_ids))
        assert per_token[:, -1].abs().max() < 1e-12  # the last position has no target and no later position
        assert rel_err(per_token.sum(1), expected_layers[:, :, d].sum(1)) < 1e-5
