"""Seeds derived from a run's seed and what is drawn for (a module's name, a document's tokens): the same thing
draws the same numbers wherever it is drawn, whatever else is tracked, batched or sharded alongside it."""
from __future__ import annotations

import zlib

SEED_MULTIPLIER = 1_000_003     # a prime: (seed, key) pairs spread over the 63-bit range


def derived_seed(seed: int, key: bytes) -> int:
    """(seed · 1,000,003 + crc32(key)) mod 2⁶³ — a torch.Generator seed."""
    return (seed * SEED_MULTIPLIER + zlib.crc32(key)) % (2 ** 63)
