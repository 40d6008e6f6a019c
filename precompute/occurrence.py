"""Does a document contain a query's answer, an intermediate step, or the answer *in the query's context*?

Pure Python (no numpy/torch): shared by precompute's analysis and the dashboard's badges, so both count alike.

- A value occurs as a whole token: numbers not inside a longer number (`(?<![\\w.])VALUE(?!\\w|\\.\\d)`), words
  case-insensitively with word boundaries.
- `answer_in_context`: the answer occurs within one line or sentence together with every context term of the query — the query's
  `context` field if given, else the numbers of its prompt, else its prompt's capitalised words that do not
  start a sentence. This is closer to Ruis et al.'s question ("does the document contain the answer to *this*
  query?") than the bare answer string, which for small numbers occurs in almost any math document.
"""
from __future__ import annotations

import re

NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
PROMPT_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
SENTENCE_BREAK = re.compile(r"[.?!:;\n]")
WORD = re.compile(r"[A-Za-z][\w'-]*")


def value_pattern(value: str) -> re.Pattern:
    escaped = re.escape(value)
    if NUMBER.fullmatch(value):
        return re.compile(r"(?<![\w.])" + escaped + r"(?!\w|\.\d)")
    return re.compile(r"(?<!\w)" + escaped + r"(?!\w)", re.IGNORECASE)


def contains_value(text: str, value: str) -> bool:
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


def query_targets(query: dict) -> list[tuple[str, str]]:
    """(target, value) pairs searched for a query: its answer, then step_1, step_2, ... (empty ones skipped)."""
    targets = []
    answer = query.get("answer")
    if answer is not None and str(answer).strip():
        targets.append(("answer", str(answer).strip()))
    for number, step in enumerate(query.get("steps") or [], start=1):
        if step is not None and str(step).strip():
            targets.append((f"step_{number}", str(step).strip()))
    return targets


SEGMENT_BREAK = re.compile(r"\n|(?<=[.?!;])\s+")


def answer_in_context(text: str, answer: str, context: list[str]) -> bool:
    """The answer and every context term occur within one line or sentence of the text."""
    if not contains_value(text, answer):
        return False
    return any(contains_value(segment, answer) and all(contains_value(segment, term) for term in context)
               for segment in SEGMENT_BREAK.split(text))
