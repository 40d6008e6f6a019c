"""Does a document contain a query's answer, an intermediate step, or the answer *in the query's context*?

Pure Python (no numpy/torch): shared by the analysis tables and the dashboard's badges, so both count alike.

- A value occurs as a whole token: numbers not inside a longer number (`(?<![\\w.])VALUE(?!\\w|\\.\\d)`), words
  case-insensitively with word boundaries.
- `answer_in_context`: the answer occurs within one line or sentence together with every context term of the
  query — the query's `context` field if given, else the numbers of its prompt, else its prompt's capitalised
  words that do not start a sentence. This is closer to Ruis et al.'s question ("does the document contain the
  answer to *this* query?") than the bare answer string, which for small numbers occurs in almost any math document.
- Targets come in two bases: `reference` (the query's `answer` and `steps` fields) and `completion` (what the
  model actually wrote: the final answer and intermediate results parsed from its completion, see
  `completion_answer` / `completion_steps`; no answer target when nothing can be parsed; a query without a
  reference answer has no targets in either basis). Steps never
  include the final answer: a last step equal to the answer is dropped, so step rates do not count it twice.
"""
from __future__ import annotations

import functools
import re

from precompute.analysis import correctness

NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
PROMPT_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
SENTENCE_BREAK = re.compile(r"[.?!:;\n]")
WORD = re.compile(r"[A-Za-z][\w'-]*")
SEGMENT_BREAK = re.compile(r"\n|(?<=[.?!;])\s+")
BASES = ("completion", "reference")

RESULT_AFTER_EQUALS = re.compile(r"=\s*(-?\d+(?:\.\d+)?)(?!\w|\.\d|\s*[-+*/^]\s*[\w(])")


@functools.lru_cache(maxsize=4096)
def value_pattern(value: str) -> re.Pattern:
    escaped = re.escape(value)
    if NUMBER.fullmatch(value):
        return re.compile(r"(?<![\w.])" + escaped + r"(?!\w|\.\d)")
    return re.compile(r"(?<!\w)" + escaped + r"(?!\w)", re.IGNORECASE)


def contains_value(text: str, value: str) -> bool:
    """Does `value` occur in `text` as a whole token (the rule above)."""
    return value_pattern(value).search(text) is not None


def context_terms(query: dict) -> list[str]:
    """The terms that must co-occur with the answer for `answer_in_context` (see module docstring)."""
    given = query.get("context")
    if given:
        return [str(term).strip() for term in given if str(term).strip()]
    prompt = str(query.get("prompt") or "")
    numbers = list(dict.fromkeys(PROMPT_NUMBER.findall(prompt)))
    if numbers:
        return numbers
    names = []
    for sentence in SENTENCE_BREAK.split(prompt):
        words = WORD.findall(sentence)
        names += [word for word in words[1:] if word[0].isupper() and len(word) > 2]
    return list(dict.fromkeys(names))


def completion_answer(completion: str, numeric: bool = True) -> str:
    """The final answer a completion states ("" if none; correctness.model_answer); numeric: only a number."""
    answer = correctness.model_answer(completion) or ""
    return answer if not numeric or correctness.as_number(answer) is not None else ""


def completion_steps(completion: str) -> list[str]:
    """Intermediate results of a worked completion: each number that ends an `= ...` expression, in order
    (`6x = 39 - 3 = 36` gives 36, not 39)."""
    return RESULT_AFTER_EQUALS.findall(str(completion or ""))


def _clean(values) -> list[str]:
    return [str(value).strip() for value in values if value is not None and str(value).strip()]


def _without_final(steps: list[str], answer: str) -> list[str]:
    return steps[:-1] if steps and answer and steps[-1] == answer else steps


def query_answer(query: dict, basis: str = "reference") -> str:
    """The answer searched for under a basis ("" if the query has none)."""
    reference = correctness.reference_answer(query) or ""
    if basis == "reference" or not reference:
        return reference
    return completion_answer(query.get("completion", ""), numeric=bool(NUMBER.fullmatch(reference)))


def query_targets(query: dict, basis: str = "reference") -> list[tuple[str, str]]:
    """(target, value) pairs searched for a query: its answer, then step_1, step_2, ... (intermediate results only,
    the final answer is not a step). Basis "completion": parsed from the model's completion (see module docstring)."""
    answer = query_answer(query, basis)
    if basis == "completion":
        steps = _clean(completion_steps(query.get("completion", ""))) if query_answer(query, "reference") else []
    else:
        steps = _clean(query.get("steps") or [])
    targets = [("answer", answer)] if answer else []
    return targets + [(f"step_{number}", step) for number, step in enumerate(_without_final(steps, answer), start=1)]


def answer_in_context(text: str, answer: str, context: list[str]) -> bool:
    """The answer and every context term occur within one line or sentence of the text."""
    answer_pattern = value_pattern(answer)
    if answer_pattern.search(text) is None:
        return False
    terms = [value_pattern(term) for term in context]
    return any(answer_pattern.search(segment) is not None and all(term.search(segment) is not None for term in terms)
               for segment in SEGMENT_BREAK.split(text))
