"""The values of command-line flags: the one parser for "a keyword or a number" (--damping auto, --query-rank
full, --queries all, --lr auto, ...), counts and byte sizes. Torch-free; every error is one UserInputError line
naming the flag."""
from __future__ import annotations

import argparse
import math

from precompute.rundir.errors import UserInputError

NUMBER_WORDS = {(int, False): "positive integer", (int, True): "non-negative integer",
                (float, False): "positive number", (float, True): "non-negative number"}


def keyword_or_number(value, flag: str, keyword: str, number: type = float, zero_allowed: bool = False):
    """`keyword` itself, or `value` as a finite `number` (int or float) above zero (at or above with
    `zero_allowed`); anything else one UserInputError line: "--flag must be 'keyword' or a positive number"."""
    if str(value) == keyword:
        return keyword
    try:
        parsed = number(value) if number is float else int(str(value))
    except (TypeError, ValueError):
        parsed = math.nan
    if not (math.isfinite(parsed) and (parsed > 0 or (zero_allowed and parsed == 0))):
        raise UserInputError(f"{flag} must be {keyword!r} or a {NUMBER_WORDS[number, zero_allowed]}, got {value!r}")
    return parsed


def parse_query_rank(value, flag: str = "--query-rank") -> int | None:
    """'full' (or None) → None; else a positive integer rank."""
    rank = None if value is None else keyword_or_number(value, flag, "full", int)
    return None if rank in (None, "full") else rank


def positive_int(text: str) -> int:
    """argparse type of every count flag."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value, flag: str) -> int:
    """A byte count such as 8GiB, 512MiB, 80GB or 1000000."""
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    try:
        count = float(number) * BYTE_UNITS[text[len(number):]]
    except (ValueError, KeyError):
        raise UserInputError(f"{flag} must be a byte count such as 8GiB, 512MiB or 80GB, got {value!r}") from None
    if count < 1:
        raise UserInputError(f"{flag} must be positive, got {value!r}")
    return int(count)
