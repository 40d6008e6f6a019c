"""Pure text tools of the dashboard against independent computations: correctness parsing, the filter language,
the query table, verbatim spans, highlights."""
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import correctness, highlight, query_table, spans
from dashboard.query_filter import FilterError, filter_rows

ROOT = Path(__file__).resolve().parents[2]


def test_parsed_answers_agree_with_the_demo_data_correct_field():
    queries = [json.loads(line) for line in (ROOT / "data" / "queries.jsonl").read_text().splitlines() if line]
    assert len(queries) > 100 and any(not q["correct"] for q in queries)
    for query in queries:
        parsed = correctness.model_answer(query["completion"])
        assert correctness.same_answer(parsed, query["answer"]) == query["correct"], (query["id"], parsed)


@pytest.mark.parametrize("completion, answer", [
    (" The change in y is 3 - 0 = 3. The slope is 3 / 2 = 1. The answer is 1.", "1"),
    (" The answer is: 2.5.", "2.5"),
    (" The capital of Veloria is Marn.", "Marn"),
    (" The Glass Orchard was written by Anna Pell.\nQ: Who? A: The currency is the pen.", "Anna Pell"),
    (" Lima.", "Lima"),
    (" First, 4 - 3 = 1, then 1 - 1 = 0", "0"),
    ("", None),
])
def test_model_answer(completion, answer):
    assert correctness.model_answer(completion) == answer


def test_is_correct_prefers_the_data_field_and_compares_numbers():
    assert correctness.is_correct({"correct": False, "completion": "The answer is 3.", "answer": "3"}) is False
    assert correctness.is_correct({"completion": "The answer is 3.0.", "answer": "3"}) is True
    assert correctness.is_correct({"completion": "The answer is paris", "answer": "Paris"}) is True
    assert correctness.is_correct({"completion": "The answer is 4.", "answer": "3"}) is False
    assert correctness.is_correct({"completion": "The answer is 4."}) is None


@pytest.fixture
def table():
    return pd.DataFrame({"id": ["a", "b", "c", "d"], "task": ["slope", "slope", "factual", "arithmetic"],
                         "correct": pd.Series([True, False, None, False], dtype=object),
                         "nats": [0.5, 2.0, 1.0, np.nan], "answer": ["3", "5", "Paris", "7"],
                         "prompt": ["x ⏎ y", "long prompt here", "capital", "sum"],
                         "completion": ["The slope is 3", "is 5", "Paris", "7"]})


@pytest.mark.parametrize("expression, expected", [
    ('task == "slope" and not correct', ["b"]),
    ("nats > 0.7", ["b", "c"]),
    ("nats * 2 >= 2 or answer in ['7']", ["b", "c", "d"]),
    ('contains(completion, "SLOPE")', ["a"]),
    ("len(prompt) > 10", ["b"]),
    ("isnull(nats)", ["d"]),
    ("0.4 < nats < 1.5", ["a", "c"]),
    ("", ["a", "b", "c", "d"]),
])
def test_filter_expressions_match_pandas(table, expression, expected):
    assert filter_rows(table, expression)["id"].tolist() == expected


@pytest.mark.parametrize("expression, message", [
    ("nats.__class__", "not allowed"), ("__import__('os')", "may be called"), ("open('x')", "may be called"),
    ("colour == 1", "no column `colour`"), ("nats >", "not an expression"), ("1 + 1", "each row"),
    ("task[0] == 's'", "not allowed"), ("task in 'slope'", "needs a list"),
])
def test_filter_expressions_refuse_anything_else(table, expression, message):
    with pytest.raises(FilterError, match=message):
        filter_rows(table, expression)


@pytest.mark.parametrize("expression, message", [
    ('contains(prompt, "a" * 9999999999)', "arithmetic needs numbers"),
    ("+".join(["1"] * 200_000) + " > nats", "longer than 2,000 characters"),
    ("+".join(["nats"] * 300) + " > 1", "nests deeper than 40 levels"),
    ("not " * 60 + "nats", "nests deeper than 40 levels"),
    ('prompt * 100000 == "a"', "arithmetic needs numbers"), ("[1] * 999999999 == nats", "arithmetic needs numbers"),
    ("nats > 1e400", "a number larger than"), ("nats < -99999999999999999999", "a number larger than"),
    ('contains(prompt, "' + "a" * 501 + '")', "a text longer than 500"),
    ("nats in [" + ", ".join(["1"] * 201) + "]", "a list of more than 200 items"),
])
def test_hostile_shared_url_expressions_are_refused_without_work(table, expression, message):
    started = time.perf_counter()
    with pytest.raises(FilterError, match=message):
        filter_rows(table, expression)
    assert time.perf_counter() - started < 0.5


def test_expressions_within_the_limits_still_work(table):
    assert filter_rows(table, "+".join(["nats"] * 30) + " >= 30")["id"].tolist() == ["b", "c"]
    assert filter_rows(table, 'contains(prompt, "' + "x" * 10 + '") or nats * 2 > 3.5')["id"].tolist() == ["b"]


def test_query_table_filters_and_sorts(table):
    assert query_table.filtered(table, correctness="incorrect")["id"].tolist() == ["b", "d"]
    assert query_table.filtered(table, correctness="unknown")["id"].tolist() == ["c"]
    assert query_table.filtered(table, task="slope", search="LONG")["id"].tolist() == ["b"]
    assert query_table.sorted_by(table, "nats", descending=True)["id"].tolist() == ["b", "c", "a", "d"]
    assert query_table.sorted_by(table, "correct", descending=False)["id"].tolist() == ["c", "b", "d", "a"]
    queries = pd.DataFrame({"id": ["q1"], "task": ["t"], "prompt": ["Q: 1?\nA:"], "completion": [" The answer is 1."],
                            "answer": ["1"], "nats": [0.3], "split": ["dev"], "steps": [["1"]]})
    built = query_table.query_table(queries)
    assert built["prompt"].iloc[0] == "Q: 1? ⏎ A:" and built["correct"].iloc[0] is True
    assert built["model_answer"].iloc[0] == "1" and built["split"].iloc[0] == "dev" and "steps" not in built


def test_query_table_reads_a_missing_answer_as_unknown():
    """An imported factual query has no `answer`: pandas gives NaN, which must not be the reference text "nan"."""
    queries = pd.DataFrame({"id": ["f", "s"], "task": ["factual", "slope"], "prompt": ["Who?", "Slope?"],
                            "completion": ["It is nan.", "m = -1\n\nTherefore, the slope is -"],
                            "answer": [np.nan, "6"], "nats": [np.nan, np.nan]})
    built = query_table.query_table(queries)
    assert built["answer"].isna().tolist() == [True, False] and built["model_answer"].tolist() == ["nan", "-1"]
    assert built["correct"].tolist() == [None, False]


def _reference_spans(completion: str, documents: list[str], n: int) -> set[tuple[int, int]]:
    """Word ranges [i, j + n) of the completion for each maximal run i..j of consecutive window starts whose
    n-word window is in some document (brute force over all windows)."""
    tokens = spans.words(completion)[0]
    grams = {tuple(w[i:i + n]) for d in documents for w in [spans.words(d)[0]] for i in range(len(w) - n + 1)}
    good = [i for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n]) in grams]
    runs = set()
    for _, group in itertools.groupby(good, key=lambda v, c=itertools.count(): v - next(c)):
        group = list(group)
        runs.add((group[0], group[-1] + n))
    return runs


def test_shared_spans_match_a_brute_force_reference():
    completion = " The change in y is 9 - 3 = 6. The change in x is 6 - 4 = 2. The slope is 6 / 2 = 3."
    documents = ["Worksheet: the change in y is 10 - 4. So 9 - 3 = 6 always.", "the slope is 6 / 2 = 3 here",
                 "nothing shared"]
    for n in (2, 3, 4, 6):
        found = {(s.first_word, s.stop_word) for s in spans.shared_spans(completion, documents, n).found}
        assert found == _reference_spans(completion, documents, n)
    shared = spans.shared_spans(completion, documents, 4)
    assert [completion[s.start:s.end] for s in shared.found] == ["The change in y is", "9 - 3 = 6",
                                                                 "The slope is 6 / 2 = 3"]
    assert [[documents[0][s.start:s.end] for s in linked] for linked in shared.linked[0]] == [
        ["the change in y is"], ["9 - 3 = 6"], []]
    assert [[documents[1][s.start:s.end] for s in linked] for linked in shared.linked[1]] == [
        [], [], ["the slope is 6 / 2 = 3"]]
    assert shared.linked[2] == ((), (), ()) and shared.holders(1) == [0] and shared.holders(2) == [1]


def test_a_span_repeating_itself_links_each_document_window_once():
    completion = "a b c a b c a b"  # one span whose windows repeat
    shared = spans.shared_spans(completion, ["x a b c a b c a b y", "b c a"], 3)
    assert [(s.first_word, s.stop_word) for s in shared.found] == [(0, 8)]
    assert [(s.first_word, s.stop_word) for s in shared.linked[0][0]] == [(1, 9)]
    assert [(s.first_word, s.stop_word) for s in shared.linked[1][0]] == [(0, 3)]


def test_target_marks_tell_in_context_from_bare_answers():
    text = "Line 5 + 3 = 8 here.\nAlso 8 apples and 58 pears; the total is 8. Then y = 5 and 5 more; 1844 and 1844."
    marks = highlight.target_marks(text, [("answer", "8"), ("step_1", "5"), ("model_answer", "1844")],
                                   context=["5", "3"])
    answers = [(m.start, m.kind) for m in marks if m.kind.startswith("answer")]
    # "= 8" in context; "Also 8 apples" not stated as a result (a one-character value), "58" is not an 8
    assert answers == [(text.index("= 8") + 2, "answer"), (text.index("is 8") + 3, "answer-bare")]
    assert [m.start for m in marks if m.kind == "step"] == [text.index("y = 5") + 4]     # not "Line 5", "5 more"
    assert [m.start for m in marks if m.kind == "model"] == [text.index("1844"), text.rindex("1844")]  # 4 chars
    assert highlight.badges(marks) == ["answer in context", "answer (anywhere)", "model answer", "step 1"]


def test_short_values_are_marked_only_where_stated_as_a_result():
    for before, stated in [("x = ", True), ("The answer is ", True), ("answer: ", True), ("slope is **", True),
                           ("page ", False), ("(", False), ("", False), ("chapter 1, ", False)]:
        text = before + "12 and more"
        found = highlight.target_marks(text, [("answer", "12")], context=[])
        assert bool(found) is stated, before
        assert highlight.stated_as_result(text, len(before)) is stated


def test_render_escapes_and_shades_tokens():
    tokens = ["<b>", "= 8", " ok"]
    text, layout = highlight.token_layout(tokens, np.array([2.0, -1.0, 0.0]))
    marks = highlight.target_marks(text, [("answer", "8")], context=[])
    rendered = highlight.render(text, marks, layout, scale=2.0)
    assert "<b>" not in rendered and "&lt;b&gt;" in rendered
    assert "rgba(214,39,40,0.85)" in rendered and "rgba(20,163,154,0.42)" in rendered
    assert 'class="m-answer"' in rendered
    faint_text, faint = highlight.token_layout(["big", " faint"], np.array([1000.0, 5.0]))  # 0.0043 of 0.85
    shaded = highlight.render(faint_text, [], faint, scale=1000.0)
    assert shaded.endswith('title="token score +1e+03">big</span> faint</div>')  # no span, no title for " faint"
    assert highlight.shaded_below(1000.0) == pytest.approx(5.88, abs=0.01)
    preview = highlight.clipped([highlight.Mark(2, 9, "span", "s"), highlight.Mark(6, 8, "step", "x")], 5)
    assert [(m.start, m.end, m.kind) for m in preview] == [(2, 5, "span")]
    numbered = highlight.render("abc def", [highlight.Mark(0, 3, "span-on", "t", 2)])
    assert '<span class="m-span-on" title="t">abc</span><sup class="span-no">2</sup> def' in numbered
