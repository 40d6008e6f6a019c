"""The final-answer parser (precompute.analysis.correctness) on answer formats, on every query of the published
files (answers read off the completions by hand) and on the demo queries (the data's own `correct` field)."""
import collections
import json
import math

import pytest

from precompute.analysis import correctness, occurrence
from precompute.published.format import query_records, read_published
from tests.published_files import REAL_FILES, ROOT, real_files_present


@pytest.mark.parametrize("completion, answer", [
    # explicit statements, the last one wins; "answer to ... is", bold and "answer:" forms
    ("The answer is 5.\nLet me check: 2 + 4 = 6.\nSo the answer is 6.", "6"),
    ("Therefore, the answer to the expression is 1,344.", "1,344"),
    ("Therefore, the answer is **43**.", "43"),
    (" The answer is: 2.5.", "2.5"),
    # concluding sentences: the value after the last cue, "x = 7" and "-16/2 = -8" read after "="
    ("(3, 5) and (4, 11)\nSlope = 6 / 1\n\nTherefore, the slope of the line through (3, 5) and (4, 11) is 6.", "6"),
    ("Divide by 2: x = 3\n\nTherefore, the solution to the equation 2x + 4 = 10 is x = 3.", "3"),
    ("so the slope is -16/2 = -8.\n\nThe negative sign indicates that the line slopes downward.", "-8"),
    ("Hence the line has a slope of approximately -3.43.", "-3.43"),
    # a truncated conclusion gives no value: the last named result counts, not a coordinate of the last line
    ("m = 6 / -6\nm = -1\n\nTherefore, the slope of the line through (71, 100) and (65, 64) is -", "-1"),
    ("Point (18, 62) and (13, 57) is $", None),
    # a clause after the value, a first clause with the value
    ("In this case, the slope is 22, which means y rises by 22 units.", "22"),
    ("The solution checks out, so the value of x is indeed 3.", "3"),
    # one-line answers (the demo's forms); the model's next question is not part of its answer
    (" The capital of Veloria is Marn.", "Marn"),
    (" The Glass Orchard was written by Anna Pell.\nQ: Who? A: The currency is the pen.", "Anna Pell"),
    (" The currency of Gorvath is the bar.", "bar"),
    (" Lima.", "Lima"),
    (" First, 4 - 3 = 1, then 1 - 1 = 0", "0"),
    # the last number on a bare last line; a truncated sentence's number is no answer
    ("Let's add 40 and 2.\n\n42", "42"),
    ("We can do this by subtracting 6 from both sides of the", None),
    ("", None),
])
def test_final_answer_formats(completion, answer):
    assert correctness.model_answer(completion) == answer


@pytest.mark.parametrize("given, reference, same", [
    ("-16/2", "-8", True), ("1,344", "1344", True), ("2.50", "2.5", True), ("−3", "-3", True), ("6", "-6", False),
    ("paris", " Paris ", True), ("Anna  Pell", "anna pell", True), ("7/0", "7", False), (None, "3", False)])
def test_same_answer(given, reference, same):
    assert correctness.same_answer(given, reference) is same


def test_missing_reference_is_unknown_not_the_text_nan():
    completion = "The answer is nan."
    for answer in (None, math.nan, "", "  "):
        assert correctness.reference_answer({"answer": answer}) is None
        assert correctness.is_correct({"answer": answer, "completion": completion}) is None
        assert occurrence.query_answer({"answer": answer, "completion": completion}, "reference") == ""
    assert correctness.is_correct({"answer": 6, "completion": "Therefore, x = 6."}) is True
    assert correctness.is_correct({"correct": False, "answer": "6", "completion": "The answer is 6."}) is False
    assert correctness.is_correct({"correct": math.nan, "answer": "6", "completion": "The answer is 6."}) is True


# Read by hand off the completions: which reasoning queries answer wrongly, and what they answer.
WRONG = {
    "7B": {"arithmetic-4d80c6": "1,344", "arithmetic-47e419": "228", "slope-f5171e": "43", "slope-ccbda4": "22",
           "slope-cf7e3a": "7", "slope-851583": "82", "slope-332692": "23", "slope-d5cfae": "undefined",
           "slope-3f43e3": "22", "slope-74d762": "3", "slope-0fa310": None, "slope-8d8a80": "733",
           "slope-033134": "-1"},
    "35B": {"linear_equation-3940d8": "-38", "linear_equation-584ed4": "-67", "linear_equation-dedb18": None,
            "slope-20afd1": "55", "slope-cf7e3a": "7", "slope-79330d": "4", "slope-74d762": "-3.43",
            "slope-177615": "undefined"},
}


@pytest.mark.skipif(not real_files_present(), reason="the published files are not in ../shared/ruis")
@pytest.mark.parametrize("size", ["7B", "35B"])
def test_every_query_of_the_published_files(size):
    rows, _ = query_records(read_published(str(REAL_FILES[size])))
    verdicts = collections.Counter()
    for row in rows:
        verdict = correctness.is_correct(row)
        verdicts[row["task"], verdict] += 1
        if "answer" not in row:        # factual queries and controls: no reference, never "incorrect"
            assert verdict is None, row["id"]
        elif row["id"] in WRONG[size]:
            assert verdict is False and correctness.model_answer(row["completion"]) == WRONG[size][row["id"]]
        else:                          # a correct one states the reference answer
            assert verdict is True and correctness.same_answer(correctness.model_answer(row["completion"]),
                                                               row["answer"]), row["id"]
    reasoning = {task for task, _ in verdicts if task in ("arithmetic", "linear_equation", "slope")}
    assert sum(verdicts[task, True] + verdicts[task, False] for task in reasoning) == 40
    assert verdicts["factual", None] == 40 and not verdicts["factual", False]


def test_demo_accuracies_from_the_parsed_answers():
    """Parsed (the data's `correct` field left out) as in README's table."""
    queries = [json.loads(line) for line in (ROOT / "data" / "queries.jsonl").read_text().splitlines() if line]
    right, total = collections.Counter(), collections.Counter()
    for query in queries:
        parsed = correctness.is_correct({**query, "correct": None})
        assert parsed == query["correct"], query["id"]
        right[query["task"]] += parsed
        total[query["task"]] += 1
    assert {task: (right[task], total[task]) for task in total} == {
        "arithmetic": (24, 24), "factual": (44, 44), "linear_equation": (16, 24), "slope": (13, 24),
        "reasoning_control": (9, 10), "factual_control": (0, 10)}
