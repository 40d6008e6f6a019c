"""Tokenisation (shifted labels, prompt masking, truncation) and padding into batches."""
import pytest
import torch

from engine.batches import IGNORE, Tokenized, make_batches, tokenize_documents, tokenize_queries
from engine.errors import EngineInputError
from tests.tiny_models import make_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def test_documents_have_shifted_labels_and_truncation(tokenizer):
    texts = ["The capital of Veloria is Marn.", "x " * 200]
    docs = tokenize_documents(tokenizer, texts, max_length=16)
    full = tokenizer(texts[0])["input_ids"]
    assert docs[0].input_ids == full[:16] and docs[0].truncated == (len(full) > 16)
    assert docs[0].labels == docs[0].input_ids[1:] + [IGNORE]
    assert len(docs[1].input_ids) == 16 and docs[1].truncated


def test_queries_mask_prompt_and_keep_completion(tokenizer):
    prompt, completion = "Solve 3 x + 4 = 10, so x =", " 2."
    (query,) = tokenize_queries(tokenizer, [prompt], [completion], max_length=64)
    p = tokenizer(prompt)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert query.input_ids == p + c and not query.truncated
    targets = [(i, lab) for i, lab in enumerate(query.labels) if lab != IGNORE]
    assert targets == [(len(p) - 1 + k, tok) for k, tok in enumerate(c)]  # position i predicts token i + 1


def test_long_prompt_is_cut_from_the_left(tokenizer):
    prompt, completion = "word " * 100 + "end", " Marn."
    (query,) = tokenize_queries(tokenizer, [prompt], [completion], max_length=12)
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    p = tokenizer(prompt)["input_ids"]
    assert query.truncated and len(query.input_ids) == 12
    assert query.input_ids == p[-(12 - len(c)):] + c
    assert [lab for lab in query.labels if lab != IGNORE] == c


def test_query_errors(tokenizer):
    with pytest.raises(EngineInputError, match="empty completion"):
        tokenize_queries(tokenizer, ["a"], [""], 16)
    with pytest.raises(EngineInputError):
        tokenize_queries(tokenizer, ["a"], ["word " * 50], 16)
    with pytest.raises(EngineInputError):
        tokenize_queries(tokenizer, ["a", "b"], ["c"], 16)


def test_make_batches_pads_right_and_keeps_order():
    items = [Tokenized([5, 6, 7], [6, 7, IGNORE], False), Tokenized([8], [IGNORE], False),
             Tokenized([1, 2], [2, IGNORE], True)]
    batches = list(make_batches(items, 2, pad_id=0))
    assert [b.index for b in batches] == [[0, 1], [2]]
    first = batches[0]
    assert torch.equal(first.input_ids, torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(first.attention_mask, torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert torch.equal(first.labels, torch.tensor([[6, 7, IGNORE], [IGNORE, IGNORE, IGNORE]]))
    assert first.n_tokens == 4
    with pytest.raises(EngineInputError):
        list(make_batches(items, 0, 0))
