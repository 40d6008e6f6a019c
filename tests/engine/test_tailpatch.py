"""engine.tailpatch against independent autograd: one small SGD step moves log p(completion) by lr times the
set's summed plain-gradient dot products; restores are exact; the sign follows EK-FAC for planted documents."""
import pytest
import torch
import torch.nn.functional as F

from engine.batches import IGNORE, make_batches, tokenize_documents, tokenize_queries
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules, load_model
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import score_documents
from engine.tailpatch import TailPatch, all_parameters, module_parameters
from tests.precompute.conftest import corpus_rows
from tests.tiny_models import make_tiny_gpt2, make_tiny_llama

PROMPT, COMPLETION = "The capital of Veloria is", " Marn."
TEXTS = [row["text"] for row in corpus_rows(12)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("tailpatch")
    return {"llama": make_tiny_llama(str(base / "llama")), "gpt2": make_tiny_gpt2(str(base / "gpt2"))}


def load(tiny, name):
    model, tokenizer = load_model(tiny[name], dtype="float64")
    return model, tokenizer, find_tracked_modules(model)


def summed_nll(model, item):
    logits = model(input_ids=torch.tensor([item.input_ids])).logits[0]
    return F.cross_entropy(logits, torch.tensor(item.labels), ignore_index=IGNORE, reduction="sum")


def autograd_gradient(model, item, parameters):
    """Plain autograd gradient of the item's summed NLL w.r.t. `parameters` (every parameter left trainable)."""
    return torch.autograd.grad(summed_nll(model, item), parameters)


def dot(a, b) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b)))


@pytest.mark.parametrize("name,which", [("llama", "tracked"), ("llama", "all"), ("gpt2", "tracked")])
def test_one_small_step_is_lr_times_summed_gradient_dot_products(tiny, name, which):
    model, tokenizer, tracked = load(tiny, name)
    chosen = module_parameters(tracked) if which == "tracked" else all_parameters(model)
    parameters = list(chosen.values())
    query = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 48)[0]
    documents = tokenize_documents(tokenizer, TEXTS[:5], 48)
    query_gradient = autograd_gradient(model, query, parameters)
    expected = sum(dot(query_gradient, autograd_gradient(model, d, parameters)) for d in documents)

    patch = TailPatch(model, chosen, batch_size=2, pad_id=tokenizer.pad_token_id)
    lr = 1e-5 / abs(expected)             # a Δ of about 1e-5 nats: the first-order regime (float64)
    result = patch.delta(query, documents, lr)
    assert result.delta_logprob / lr == pytest.approx(expected, rel=0.02)
    assert float(patch.first_order([query], documents)[0]) == pytest.approx(expected, rel=1e-8)
    two_steps = patch.delta(query, documents, lr, steps=2)
    assert two_steps.delta_logprob / lr == pytest.approx(2 * expected, rel=0.04)
    gradient = patch.set_gradient(documents)         # the first step's gradient, when the caller already has it
    assert dot(gradient, query_gradient) == pytest.approx(expected, rel=1e-8)
    for steps, without in ((1, result), (2, two_steps)):
        given = patch.deltas([query], documents, lr, steps, gradient=gradient)[0]
        assert given.delta_logprob == without.delta_logprob
    assert float(patch.first_order([query], documents, gradient)[0]) == float(patch.first_order([query], documents)[0])


def test_per_token_deltas_and_exact_restore(tiny):
    model, tokenizer, tracked = load(tiny, "llama")
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    query = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 48)[0]
    documents = tokenize_documents(tokenizer, TEXTS[:3], 48)
    patch = TailPatch(model, module_parameters(tracked), batch_size=2, pad_id=tokenizer.pad_token_id)

    def token_logprobs():       # log p of each completion token, by hand
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([query.input_ids])).logits[0]
        labels = torch.tensor(query.labels)
        keep = labels != IGNORE
        return torch.log_softmax(logits, -1)[keep, labels[keep]]

    before = token_logprobs()
    with patch.patched(documents, lr=0.05):
        after = token_logprobs()
    result = patch.delta(query, documents, lr=0.05)
    n_completion = sum(label != IGNORE for label in query.labels)
    assert result.n_tokens == n_completion
    torch.testing.assert_close(result.delta_per_token, after - before, rtol=1e-9, atol=1e-12)
    assert result.delta_logprob == pytest.approx(float((after - before).sum()), rel=1e-9)
    for n, p in model.named_parameters():
        assert torch.equal(p, saved[n]), n
        assert p.requires_grad == flags[n], n


def test_sign_follows_ekfac_for_planted_documents(tiny):
    """A document repeating the query's prompt + completion has the highest EK-FAC score and raises log p the
    most; the three highest-scored documents raise it, the three lowest-scored lower it."""
    model, tokenizer, tracked = load(tiny, "llama")
    planted = " ".join([PROMPT + COMPLETION] * 3)
    texts = [row["text"] for row in corpus_rows(24)] + [planted]
    documents = tokenize_documents(tokenizer, texts, 64)
    query = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 64)[0]
    pad = tokenizer.pad_token_id
    factors = fit_factors(model, tracked, make_batches(documents, 4, pad), FactorArguments("ekfac"), progress=False)
    grads, _ = query_gradients(model, tracked, [query], 1)
    pq = precondition(grads, factors, QueryArguments(rank=None))
    scores = torch.zeros(len(documents), dtype=torch.float64)
    for result in score_documents(model, tracked, pq, make_batches(documents, 4, pad), progress=False):
        scores[result.index] = result.scores[0].double()

    patch = TailPatch(model, module_parameters(tracked), batch_size=4, pad_id=pad)
    before = patch.completion_logprobs([query])[0]
    deltas = torch.tensor([patch.delta(query, [d], 1e-2, before=before).delta_logprob for d in documents])
    assert int(scores.argmax()) == len(texts) - 1
    assert int(deltas.argmax()) == len(texts) - 1
    order = torch.argsort(scores, descending=True)
    assert (deltas[order[:3]] > 0).all(), (scores[order[:3]], deltas[order[:3]])
    assert (deltas[order[-3:]] < 0).all(), (scores[order[-3:]], deltas[order[-3:]])
