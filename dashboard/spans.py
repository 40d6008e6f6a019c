"""Verbatim overlaps between a query's completion and documents (as OLMoTrace shows them), pure Python.

Text is split into words and punctuation marks (`WORD`); two texts share a span where at least `n` consecutive
words are equal (case-insensitive). `completion_spans` gives the maximal completion spans that occur in any of
the documents; `linked_spans` gives, for one document, its spans that repeat a given completion span. Offsets
are character offsets into the texts, so the spans can be highlighted in place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

WORD = re.compile(r"\w+|[^\w\s]")
DEFAULT_MIN_WORDS = 4


@dataclass(frozen=True)
class Span:
    start: int  # character offsets into the text
    end: int
    first_word: int  # word offsets
    stop_word: int


def words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Lower-cased words and punctuation marks of `text` with their (start, end) character offsets."""
    found = list(WORD.finditer(text))
    return [m.group(0).lower() for m in found], [(m.start(), m.end()) for m in found]


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def _merge(starts: list[int], n: int) -> list[tuple[int, int]]:
    """Sorted starts of matching n-word windows as maximal [first, stop) word ranges: windows whose starts follow
    each other form one verbatim run (windows that merely touch or overlap by fewer words do not)."""
    merged: list[tuple[int, int]] = []
    for start in starts:
        if merged and start == merged[-1][1] - n + 1:
            merged[-1] = (merged[-1][0], start + n)
        else:
            merged.append((start, start + n))
    return merged


def _span(offsets: list[tuple[int, int]], first: int, stop: int) -> Span:
    return Span(offsets[first][0], offsets[stop - 1][1], first, stop)


def completion_spans(completion: str, documents: list[str], n: int = DEFAULT_MIN_WORDS) -> list[Span]:
    """Maximal spans of the completion (at least n words) made of consecutive n-word windows that each occur in
    some document."""
    tokens, offsets = words(completion)
    if len(tokens) < n:
        return []
    seen: set[tuple[str, ...]] = set()
    for document in documents:
        seen |= _ngrams(words(document)[0], n)
    starts = [i for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n]) in seen]
    return [_span(offsets, first, stop) for first, stop in _merge(starts, n)]


def linked_spans(completion: str, span: Span, document: str, n: int = DEFAULT_MIN_WORDS) -> list[Span]:
    """The document's maximal spans made of n-word windows that occur inside the completion span."""
    tokens = words(completion)[0][span.first_word:span.stop_word]
    wanted = _ngrams(tokens, n)
    doc_tokens, doc_offsets = words(document)
    starts = [j for j in range(len(doc_tokens) - n + 1) if tuple(doc_tokens[j:j + n]) in wanted]
    return [_span(doc_offsets, first, stop) for first, stop in _merge(starts, n)]


def span_label(text: str, span: Span, limit: int = 60) -> str:
    """The span's text on one line, shortened to `limit` characters."""
    shown = " ".join(text[span.start:span.end].split())
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"
