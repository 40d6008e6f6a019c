"""Answer / step badges for document cards: the same rule as the analysis tables (precompute.analysis.occurrence,
pure Python; importing it pulls in no torch or engine code)."""
from __future__ import annotations

from precompute.analysis.occurrence import answer_in_context, contains_value, context_terms, query_targets

__all__ = ["answer_in_context", "contains_value", "context_terms", "found_targets", "query_targets"]


def found_targets(text: str, targets: list[tuple[str, str]]) -> list[str]:
    return [name for name, value in targets if contains_value(text, value)]
