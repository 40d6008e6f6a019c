"""Greedy completions run to the end of the answer: eos, a blank line (with stop_at_blank_line) or the cap; each
answer says which. Checked against the demo model's committed completions (data/make_queries.complete: 64 tokens,
cut at the first blank line)."""
import json

import pytest
import torch

from data.make_queries import load_model
from engine.generate import blank_line_at, greedy_answers, greedy_completions

QUERIES = {q["id"]: q for q in map(json.loads, open("data/queries.jsonl"))}
RUNS_ON = next(q["id"] for q in QUERIES.values() if "\nQ:" in q["completion"])   # goes on with a new question


@pytest.fixture(scope="module")
def model_and_tokenizer():
    torch.set_num_threads(1)
    return load_model()


def test_blank_line_at():
    assert blank_line_at(" 42.\n\nQ: next") == 4
    assert blank_line_at("\n\n 42.") == -1          # leading blank lines are no answer yet
    assert blank_line_at(" one\ntwo\n") == -1


def test_each_completion_ends_at_eos_a_blank_line_or_the_cap(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = ["arithmetic-00", "factual-08", RUNS_ON]
    prompts = [QUERIES[i]["prompt"] for i in ids]
    answers = greedy_answers(model, tokenizer, prompts, 64, batch_size=2, progress=False, stop_at_blank_line=True)
    assert [a.text for a in answers] == [QUERIES[i]["completion"] for i in ids]
    assert [a.ended for a in answers] == ["eos", "eos", "blank line"]
    # without the blank-line rule the model repeats its next question until the cap
    went_on = greedy_answers(model, tokenizer, [QUERIES[RUNS_ON]["prompt"]], 64, batch_size=1, progress=False)[0]
    assert went_on.ended == "cap" and went_on.text.startswith(QUERIES[RUNS_ON]["completion"] + "\n\n")
    capped = greedy_answers(model, tokenizer, prompts[:1], 4, batch_size=1, progress=False, stop_at_blank_line=True)
    assert capped[0].ended == "cap" and QUERIES["arithmetic-00"]["completion"].startswith(capped[0].text)
    assert len(tokenizer(capped[0].text, add_special_tokens=False)["input_ids"]) <= 4
    assert greedy_completions(model, tokenizer, prompts[:2], 64, progress=False) == [a.text for a in answers[:2]]
