"""Which documents of the whole corpus contain a value (or the answer in a query's context)?

The rule is precompute.analysis.occurrence's (Python `re`). Scanning a million texts once per value in Python
is slow, so a vectorised RE2 pass (pyarrow.compute) first selects candidates with a looser pattern (ASCII word
classes, which accept every text the exact rule accepts), and the exact rule then decides on the candidates only.
Results are document indices (sorted int64), cached per value.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from precompute.analysis import occurrence

RE2_SPECIAL = set("\\.^$|?*+()[]{}")


def re2_literal(value: str) -> str:
    return "".join("\\" + char if char in RE2_SPECIAL else char for char in value)


def loose_pattern(value: str) -> tuple[str, bool]:
    """(RE2 pattern, ignore_case) accepting at least every text where `value` occurs by the exact rule."""
    literal = re2_literal(value)
    if occurrence.NUMBER.fullmatch(value):
        return r"(?:^|[^\w.])" + literal + r"(?:$|[^\w.]|\.(?:$|[^0-9]))", False
    return r"(?:^|\W)" + literal + r"(?:$|\W)", True


class CorpusSearch:
    def __init__(self, texts):
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            self.texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        else:
            self.texts = pa.array(list(texts), type=pa.large_string())
        self._values: dict[str, np.ndarray] = {}
        self._contexts: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: np.ndarray) -> list[str]:
        return self.texts.take(pa.array(np.asarray(indices, dtype=np.int64))).to_pylist()

    def _candidates(self, value: str, among: np.ndarray | None = None) -> np.ndarray:
        """Indices (of all documents, or of `among` only) that the loose RE2 pattern accepts."""
        pattern, ignore_case = loose_pattern(value)
        texts = self.texts if among is None else self.texts.take(pa.array(among))
        mask = pc.match_substring_regex(texts, pattern, ignore_case=ignore_case)
        found = np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False))
        return found if among is None else among[found]

    def containing(self, value: str) -> np.ndarray:
        """Indices of the documents in which `value` occurs (occurrence.contains_value)."""
        if value not in self._values:
            candidates = self._candidates(value)
            pattern = occurrence.value_pattern(value)
            keep = [pattern.search(text) is not None for text in self.take(candidates)]
            self._values[value] = candidates[np.asarray(keep, dtype=bool)] if len(candidates) else candidates
        return self._values[value]

    def in_context(self, answer: str, context: list[str]) -> np.ndarray:
        """Indices of the documents with the answer in one line/sentence with every context term."""
        key = (answer, tuple(context))
        if key not in self._contexts:
            candidates = self.containing(answer)
            for term in context:    # narrowed within the answer's documents, not by a scan of the corpus
                candidates = self._candidates(term, candidates) if len(candidates) else candidates
            keep = [occurrence.answer_in_context(text, answer, context) for text in self.take(candidates)]
            self._contexts[key] = candidates[np.asarray(keep, dtype=bool)] if len(candidates) else candidates
        return self._contexts[key]


def texts_containing(texts: list[str], value: str) -> np.ndarray:
    """Boolean mask over a list of texts: does `value` occur (occurrence.contains_value) — the exact rule."""
    pattern = occurrence.value_pattern(value)
    return np.fromiter((pattern.search(text) is not None for text in texts), dtype=bool, count=len(texts))
