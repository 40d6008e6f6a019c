"""The committed query sets: counts, fields, and every answer and step recomputed from the prompt alone."""
import json
import re
from collections import Counter

import pytest

from data.facts import all_facts
from data.make_queries import accuracy, final_answer
from data.manifest import read_manifest

QUERIES = [json.loads(line) for line in open("data/queries.jsonl")]


def test_counts_and_fields():
    counts = Counter(q["task"] for q in QUERIES)
    for task in ("arithmetic", "slope", "linear_equation"):
        assert counts[task] >= 20
    assert counts["factual"] >= 40 and counts["factual_control"] == 10 and counts["reasoning_control"] == 10
    assert len({q["id"] for q in QUERIES}) == len(QUERIES)
    for q in QUERIES:
        assert set(q) == {"id", "task", "prompt", "completion", "answer", "steps", "correct"}
        assert isinstance(q["answer"], str) and all(isinstance(s, str) for s in q["steps"])
        assert q["completion"].strip() and "\n\n" not in q["completion"]


def _recompute(q):
    """(steps, answer) derived independently from the prompt text."""
    p = q["prompt"]
    if q["task"] == "arithmetic":
        a, op1, b, op2, c = re.fullmatch(r"Q: What is \((\d+) ([-+*]) (\d+)\) ([-+*]) (\d+)\?\nA:", p).groups()
        inner = eval(f"{a} {op1} {b}")  # noqa: S307 - digits and one operator, matched above
        return [str(inner), str(eval(f"{inner} {op2} {c}"))]  # noqa: S307
    if q["task"] == "slope":
        x1, y1, x2, y2 = map(int, re.search(r"\((\d+), (\d+)\) and \((\d+), (\d+)\)", p).groups())
        assert (y2 - y1) % (x2 - x1) == 0
        return [str(y2 - y1), str(x2 - x1), str((y2 - y1) // (x2 - x1))]
    a, b, c = map(int, re.fullmatch(r"Q: Solve for x: (\d+)x \+ (\d+) = (\d+)\.\nA:", p).groups())
    x = (c - b) // a
    assert a * x + b == c
    return [str(c - b), str(x)]


@pytest.mark.parametrize("q", [q for q in QUERIES if q["task"] in ("arithmetic", "slope", "linear_equation")],
                         ids=lambda q: q["id"])
def test_reasoning_answer_and_steps(q):
    steps = _recompute(q)
    assert q["steps"] == steps and q["answer"] == steps[-1]


def test_factual_answers_are_world_facts():
    answers = {a for _, _, a in all_facts()}
    for q in QUERIES:
        if q["task"] == "factual":
            assert q["answer"] in answers and q["steps"] == []


def test_controls_state_the_answer_in_the_prompt():
    for q in QUERIES:
        if q["task"] == "factual_control":
            assert f" is {q['answer']}." in q["prompt"].split("\n")[0]
        if q["task"] == "reasoning_control":
            assert q["prompt"].split("\n")[0].endswith(f" is {q['answer']}.")


def test_correct_flag_and_reported_accuracy():
    for q in QUERIES:
        assert q["correct"] == (final_answer(q["completion"]) == q["answer"]), q["id"]
    assert read_manifest()["queries"]["accuracy"] == accuracy(QUERIES)


def test_final_answer_parsing():
    assert final_answer(" First, 7 - 4 = 3. Then, 3 * 7 = 21. The answer is 21.") == "21"
    assert final_answer(" The currency of Tarsis is the tal.") == "tal"
    assert final_answer(" The Glass Orchard was written by Anna Pell.") == "Anna Pell"
