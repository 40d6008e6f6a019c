"""Whether an answer or step value occurs in a document, by the run-directory contract's rule:
numbers as whole tokens (`(?<![\\w.])VALUE(?![\\w])`), words case-insensitively on word boundaries."""
from __future__ import annotations

import re
from functools import lru_cache

_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@lru_cache(maxsize=4096)
def _pattern(value: str) -> re.Pattern:
    if _NUMBER.fullmatch(value):
        return re.compile(rf"(?<![\w.]){re.escape(value)}(?![\w])")
    return re.compile(rf"\b{re.escape(value)}\b", re.IGNORECASE)


def contains_value(text: str, value: str) -> bool:
    value = str(value).strip()
    return bool(value) and _pattern(value).search(text) is not None


def query_targets(query: dict) -> list[tuple[str, str]]:
    """(target name, value) pairs of a query: `answer` and `step_1`, `step_2`, …"""
    targets = []
    answer = query.get("answer")
    if isinstance(answer, str | int | float) and str(answer).strip():
        targets.append(("answer", str(answer)))
    steps = query.get("steps")
    if isinstance(steps, list | tuple):
        targets += [(f"step_{i}", str(step)) for i, step in enumerate(steps, 1) if str(step).strip()]
    return targets


def found_targets(text: str, targets: list[tuple[str, str]]) -> list[str]:
    return [name for name, value in targets if contains_value(text, value)]
