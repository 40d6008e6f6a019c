"""The committed demo model loads, is small, and reproduces its committed greedy completions."""
import json
import os

import pytest
import torch

from data.make_queries import complete, final_answer, load_model
from data.manifest import read_manifest

QUERIES = [json.loads(line) for line in open("data/queries.jsonl")]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    torch.set_num_threads(1)
    return load_model()


def test_model_is_small_llama(model_and_tokenizer):
    size = sum(os.path.getsize(os.path.join("data/model", f)) for f in os.listdir("data/model"))
    assert size < 10 * 2**20
    model, tokenizer = model_and_tokenizer
    assert model.config.model_type == "llama"
    assert tokenizer.eos_token is not None and tokenizer.pad_token is not None
    assert sum(p.numel() for p in model.parameters()) == read_manifest()["model"]["n_parameters"]


def test_greedy_completions_reproduce_on_a_sample(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    by_task = {}
    for q in QUERIES:
        by_task.setdefault(q["task"], []).append(q)
    n_per_task = {"factual_control": 1, "reasoning_control": 1}  # 2 of every other task: 10 queries
    sample = [q for task, qs in by_task.items() for q in qs[:n_per_task.get(task, 2)]]
    for q in sample:
        completion = complete(model, tokenizer, q["prompt"])
        assert completion == q["completion"], q["id"]
        assert (final_answer(completion) == q["answer"]) == q["correct"]


def test_corpus_hash_recorded_for_the_model():
    """The model was trained on the corpus file before documents carried `kind`; the same lines without `kind`
    hash to what training recorded (tests/data/test_corpus.py checks the generator reproduces that hash)."""
    m = read_manifest()
    assert m["model"]["corpus_sha256"] == m["corpus"]["sha256_without_kind"]
