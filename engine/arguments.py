"""The engine's choices and their one validator each; torch-free so that a CLI can import them cheaply."""
from __future__ import annotations

from engine.errors import EngineInputError

STRATEGIES = ("ekfac", "kfac", "diagonal", "identity")
FISHERS = ("sampled", "empirical")
MEASUREMENTS = ("completion", "answer")   # engine.task.TASKS: −log p(completion) | −log p(answer tokens only)


def parse_damping(value) -> str | float:
    """'auto' (λ = 0.1 · mean eigenvalue per module) or a non-negative number."""
    if value == "auto":
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EngineInputError(f"damping must be 'auto' or a number, got {value!r}") from None
    if number != number or number < 0:
        raise EngineInputError(f"damping must be a non-negative number, got {value}")
    return number
