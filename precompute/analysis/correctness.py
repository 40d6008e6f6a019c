"""The final answer a model's completion states, and whether it equals the query's reference answer.

Pure Python (no numpy, no torch): the one rule shared by the analysis (correctness splits, completion-basis
targets) and the dashboard (badges, the query table's `model_answer`).

`model_answer(completion)`: the text is cut where the model starts a new question (a line "Q:", "Question:",
"Prompt:"); then, first that finds a value:
1. the last explicit answer: "answer is X", "answer: X", "the answer to ... is X", "final answer is X";
2. the last concluding sentence ("Therefore", "Thus", "Hence", "So", "In conclusion", "Finally", "In summary")
   with a value after its last "is", "was", "are", "equals", "by" or "=", or else its last number
   ("... has a slope of approximately -3.43" → -3.43);
3. the last line's value after its last such cue ("The capital of Veloria is Marn." → Marn);
4. the last line that assigns a number to a name ("m = -1", "Slope = 22", "x = 7");
5. a one-line completion of at most SHORT_ANSWER_WORDS words (" Lima." → Lima);
6. the last number of the last line.
A value ends at its sentence's end (a full stop not followed by a digit, "!", "?", ";", a comma not inside a
number, or a clause such as ", which ..."); of "x = 7" or "-16/2 = -8" the part after the last "=" counts;
"approximately", "about", "exactly", "equal to", a leading article, quotes, "**" and "$" are dropped; a value that
begins with a number is that number ("22 units" → 22). A truncated statement ("... is -") gives no value, so the
search goes on with the next rule. No rule finds a value: None ("no answer found").

`same_answer`: numbers are equal as fractions ("-16/2" = "-8", "1,344" = "1344", "2.50" = "2.5"); other answers
when equal ignoring case and spaces. `is_correct`: the data's `correct` field if it has one, else the parsed answer
against `reference_answer` — None (unknown) when the query has no reference answer (a missing, NaN or blank
`answer` is no answer, never the text "nan").
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

SHORT_ANSWER_WORDS = 3
SHORT_LINE_WORDS = 6
_NUMBER = r"[-+−]?\d+(?:,\d{3})*(?:\.\d+)?"
NUMBER = re.compile(rf"{_NUMBER}(?:\s*/\s*{_NUMBER})?")          # also a fraction "-16/2"
_LEADING_NUMBER = re.compile(rf"\(?({_NUMBER}(?:\s*/\s*\(?{_NUMBER}\)?)?)\)?(?![\w.])")
_NEW_QUESTION = re.compile(r"\n\s*(?:Q|Question|Prompt)\s*:", re.IGNORECASE)
_EXPLICIT = re.compile(r"\banswer(?:\s+(?:to|for|of)\b[^\n.!?:]*?)?\s*(?:\bis\b|\bwas\b|:|=)\s*:?", re.IGNORECASE)
_CONCLUSION = re.compile(r"(?:^|(?<=[.!?:])\s+|^[-*•\d.)\s]+)(?:therefore|thus|hence|so|in conclusion|finally|"
                         r"in summary)\b", re.IGNORECASE | re.MULTILINE)
_CUE = re.compile(r"\s(?:is|was|are|equals|by(?!\s+\w+ing\b))(?=[\s:]|$)\s*:?\s*|=", re.IGNORECASE)
_SENTENCE = re.compile(r"\.(?=\s|$)|[!?\n]")
_CLAUSE = re.compile(r",\s+(?:which|so|and|this|meaning|because|since|as|where)\b", re.IGNORECASE)
_VALUE_END = re.compile(r"\.(?!\d)|[!?;\n]|,(?!\d{3}\b)")
_NAMED_RESULT = re.compile(rf"^[-*•\s]*[A-Za-z][A-Za-z ()]{{0,30}}=\s*(?:.*=\s*)?\$?({_NUMBER})\$?\s*\.?\s*$",
                           re.MULTILINE)
_HEDGE = re.compile(r"^(?:(?:approximately|about|around|roughly|exactly|equal to|indeed|also|called|named|known as|"
                    r"located in|born in|≈|~)\s+)+", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_STRIP = " \t\"'`*$"


def _value(rest: str) -> str | None:
    """The answer at the start of `rest` (the text after a cue), or None when it holds none."""
    end = _VALUE_END.search(rest)
    value = (rest[:end.start()] if end else rest).strip(_STRIP)
    if "=" in value:
        value = value.rsplit("=", 1)[1].strip(_STRIP)
    value = _ARTICLE.sub("", _HEDGE.sub("", value)).strip(_STRIP)
    number = _LEADING_NUMBER.match(value)
    if number:
        return re.sub(r"\s+", "", number.group(1)).replace("(", "").replace(")", "").replace("−", "-")
    return value if any(c.isalnum() for c in value) else None


def _after_last_cue(sentence: str) -> tuple[bool, str | None]:
    """(whether `sentence` has a cue, the value after the last cue of its first clause that has one)."""
    for clause in _CLAUSE.split(sentence):
        found = list(_CUE.finditer(clause))
        if found:
            return True, _value(clause[found[-1].end():])
    return False, None


def _explicit(text: str) -> str | None:
    for match in reversed(list(_EXPLICIT.finditer(text))):
        value = _value(text[match.end():])
        if value is not None:
            return value
    return None


def _concluding(text: str) -> str | None:
    found = list(_CONCLUSION.finditer(text))
    if not found:
        return None
    end = _SENTENCE.search(text, found[-1].end())
    sentence = text[found[-1].end():end.start() if end else len(text)]
    has_cue, value = _after_last_cue(sentence)
    numbers = NUMBER.findall(sentence)
    return value if has_cue or not numbers else _value(numbers[-1])


def _last_line(text: str) -> str | None:
    """The value of the last sentence of the last line that has a cue."""
    last = [line for line in text.splitlines() if line.strip()][-1]
    for sentence in reversed(re.split(r"(?<=[.!?])\s+", last)):
        has_cue, value = _after_last_cue(sentence)
        if has_cue:
            return value
    return None


def _named_result(text: str) -> str | None:
    found = _NAMED_RESULT.findall(text)
    return _value(found[-1]) if found else None


def _short_phrase(text: str) -> str | None:
    if "\n" in text:
        return None
    phrase = text.strip().rstrip(".!?").strip(_STRIP)
    return _value(phrase) if 0 < len(phrase.split()) <= SHORT_ANSWER_WORDS else None


def _last_number(text: str) -> str | None:
    line = text.splitlines()[-1]
    if len(line.split()) > SHORT_LINE_WORDS or _CUE.search(line):   # a truncated sentence, not a bare result
        return None
    numbers = NUMBER.findall(line)
    return _value(numbers[-1]) if numbers else None


def model_answer(completion) -> str | None:
    """The final answer the completion states (see the module docstring), or None when it states none."""
    text = str(completion or "")
    new_question = _NEW_QUESTION.search(text)
    text = (text[:new_question.start()] if new_question else text).strip()
    if not text:
        return None
    for rule in (_explicit, _concluding, _last_line, _named_result, _short_phrase, _last_number):
        value = rule(text)
        if value is not None:
            return value
    return None


def as_number(text) -> Fraction | None:
    """The number `text` states exactly ("1,344", "-16/2", "2.5"), or None."""
    text = str(text).strip().replace("−", "-")
    if not NUMBER.fullmatch(text):
        return None
    parts = [Fraction(part.strip().replace(",", "")) for part in text.split("/")]
    if len(parts) == 2 and parts[1] == 0:
        return None
    return parts[0] / parts[1] if len(parts) == 2 else parts[0]


def same_answer(given, reference) -> bool:
    if given is None or reference is None:
        return False
    a, b = as_number(given), as_number(reference)
    if a is not None and b is not None:
        return a == b
    return " ".join(str(given).casefold().split()) == " ".join(str(reference).casefold().split())


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip()


def reference_answer(query: dict) -> str | None:
    """The query's reference `answer` as text, None when it has none (missing, NaN, blank)."""
    value = query.get("answer")
    return None if _missing(value) else str(value).strip()


def is_correct(query: dict) -> bool | None:
    """The data's `correct` field, else the parsed answer compared with `reference_answer`; None without one."""
    given = query.get("correct")
    if not _missing(given) and str(given).casefold() in ("true", "false", "1", "0", "1.0", "0.0"):
        return str(given).casefold() in ("true", "1", "1.0")
    reference = reference_answer(query)
    if reference is None:
        return None
    return same_answer(model_answer(query.get("completion", "")), reference)
