"""Verbatim overlaps between a query's completion and documents (as OLMoTrace shows them), pure Python.

Text is split into words and punctuation marks (`WORD`); two texts share a span where at least `n` consecutive
words are equal (case-insensitive). `shared_spans` gives the maximal completion spans that occur in any of the
documents and, for each document, its spans that repeat each completion span, splitting every text once. Offsets
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


@dataclass(frozen=True)
class SharedSpans:
    """The completion's maximal spans found in some document, and for each document (in the order given) and
    each found span, the document's maximal spans made of n-word windows that occur inside that span."""
    found: tuple[Span, ...]
    linked: tuple[tuple[tuple[Span, ...], ...], ...]  # [document][found span] -> the document's spans

    def holders(self, number: int) -> list[int]:
        """Indices of the documents that repeat found span `number` (0-based)."""
        return [i for i, per_span in enumerate(self.linked) if per_span[number]]


def _windows(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def shared_spans(completion: str, documents: list[str], n: int = DEFAULT_MIN_WORDS) -> SharedSpans:
    """Spans of the completion (at least n words, made of consecutive n-word windows that each occur in some
    document) and the document spans linked to each. Each text is split into words once."""
    tokens, offsets = words(completion)
    split = [words(document) for document in documents]
    document_windows = [_windows(doc_tokens, n) for doc_tokens, _ in split]
    seen = set().union(*document_windows)
    windows = _windows(tokens, n)
    ranges = _merge([i for i, gram in enumerate(windows) if gram in seen], n)
    owners: dict[tuple[str, ...], list[int]] = {}  # window -> the found spans it lies in (each once)
    for number, (first, stop) in enumerate(ranges):
        for gram in windows[first:stop - n + 1]:
            numbers = owners.setdefault(gram, [])
            if not numbers or numbers[-1] != number:
                numbers.append(number)
    linked = []
    for (_, doc_offsets), grams in zip(split, document_windows):
        starts: list[list[int]] = [[] for _ in ranges]
        for j, gram in enumerate(grams):
            for number in owners.get(gram, ()):
                starts[number].append(j)
        linked.append(tuple(tuple(_span(doc_offsets, first, stop) for first, stop in _merge(found, n))
                            for found in starts))
    return SharedSpans(tuple(_span(offsets, first, stop) for first, stop in ranges), tuple(linked))


def repeats(completion: str, span: Span, text: str, n: int = DEFAULT_MIN_WORDS) -> bool:
    """Does `text` repeat the completion's `span`: holds one of its n-word windows (as `shared_spans` links them)."""
    grams = set(_windows(words(completion)[0][span.first_word:span.stop_word], n))
    return any(gram in grams for gram in _windows(words(text)[0], n))


def span_label(text: str, span: Span, limit: int = 60) -> str:
    """The span's text on one line, shortened to `limit` characters."""
    shown = " ".join(text[span.start:span.end].split())
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"
