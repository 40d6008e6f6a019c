"""Did the model answer a query correctly? The query's `correct` field when the data has one; otherwise the answer
parsed from the model's completion, compared with the reference `answer`.

Pure Python (no numpy, no torch), so the analysis may share the rule. Parsing (`model_answer`):
only the completion's first line counts (a model that goes on with a new "Q:" has answered already), then
1. the text after the last "answer is" (e.g. "... The answer is 3." → "3");
2. else the text after the last " is ", " was ", " are " or " by " (e.g. "The capital of Veloria is Marn." →
   "Marn", "... was written by Anna Pell." → "Anna Pell");
3. else the whole line when it is one short phrase (at most 6 words, e.g. " Lima.");
4. else the last number;
the text is cut at the end of its sentence (a full stop not followed by a digit, "!", "?", ";", ","), and a
leading "the", "a" or "an" is dropped.
Two answers are equal when their numbers are equal, else when they are equal ignoring case and spaces.
"""
from __future__ import annotations

import re

_AFTER = (re.compile(r"answer is\s*:?\s*", re.IGNORECASE), re.compile(r"\s(?:is|was|are|by)\s+", re.IGNORECASE))
_SENTENCE_END = re.compile(r"\.(?!\d)|[!?;,]")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_QUOTES = " \t\"'`*"


def _after_last(pattern: re.Pattern, text: str) -> str | None:
    found = list(pattern.finditer(text))
    if not found:
        return None
    rest = text[found[-1].end():]
    end = _SENTENCE_END.search(rest)
    value = _ARTICLE.sub("", (rest[:end.start()] if end else rest).strip(_QUOTES))
    return value or None


def model_answer(completion: str) -> str | None:
    """The answer the completion states (see the module docstring), or None when it states none."""
    text = str(completion or "").strip().split("\n")[0]
    for pattern in _AFTER:
        value = _after_last(pattern, text)
        if value is not None:
            return value
    whole = text.strip().rstrip(".!?;,").strip(_QUOTES)
    if whole and len(whole.split()) <= 6 and not _SENTENCE_END.search(whole):
        return _ARTICLE.sub("", whole)
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def same_answer(given: str | None, reference: str | None) -> bool:
    if given is None or reference is None:
        return False
    a, b = str(given).strip(), str(reference).strip()
    if _NUMBER.fullmatch(a) and _NUMBER.fullmatch(b):
        return float(a) == float(b)
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def is_correct(query: dict) -> bool | None:
    """The data's `correct` field, else the parsed answer compared with `answer`; None without a reference."""
    given = query.get("correct")
    if isinstance(given, bool):
        return given
    reference = query.get("answer")
    if reference is None or not str(reference).strip():
        return None
    return same_answer(model_answer(query.get("completion", "")), str(reference))
