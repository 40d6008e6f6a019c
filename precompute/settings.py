"""The settings of one run, taken from the CLI flags, and the fingerprints that decide what can be re-used."""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass

from precompute.errors import UserInputError
from precompute.rundir import sha256_of_file


@dataclass
class Settings:
    model: str
    corpus: str
    out: str
    strategy: str = "ekfac"
    fisher: str = "sampled"
    modules: str = "mlp"
    factor_docs: int | None = None
    max_length: int = 256
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0
    overwrite: bool = False
    queries: str | None = None
    damping: str | float = "auto"
    query_rank: int | None = 32          # None = full
    token_topk: int = 10
    chunk_docs: int | None = None
    top_k: int = 100

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        values = {name: getattr(args, name) for name in cls.__dataclass_fields__ if hasattr(args, name)}
        settings = cls(**values)
        settings.damping = parse_damping(settings.damping)
        settings.query_rank = parse_query_rank(getattr(args, "query_rank", "32"))
        if settings.token_topk < 0:
            raise UserInputError(f"--token-topk must be >= 0, got {settings.token_topk}")
        return settings

    @property
    def documents_per_chunk(self) -> int:
        return self.chunk_docs or self.batch_size * 64

    def fit_key(self) -> dict:
        """Everything the factors depend on; equal keys mean the factors in the run can be re-used."""
        return {"model": os.path.abspath(self.model) if os.path.exists(self.model) else self.model,
                "corpus_sha256": sha256_of_file(self.corpus), "strategy": self.strategy, "fisher": self.fisher,
                "modules": self.modules, "factor_docs": self.factor_docs, "max_length": self.max_length,
                "batch_size": self.batch_size, "dtype": self.dtype, "seed": self.seed}

    def score_key(self, fit_key: dict) -> dict:
        """Everything the score chunks depend on (world size excluded: chunks are global document ranges)."""
        return {**fit_key, "queries_sha256": sha256_of_file(self.queries), "damping": self.damping,
                "query_rank": self.query_rank, "chunk_docs": self.documents_per_chunk}

    def manifest_fields(self) -> dict:
        fields = asdict(self)
        for name in ("out", "overwrite", "corpus", "queries", "chunk_docs", "top_k"):
            fields.pop(name)
        fields["query_rank"] = "full" if self.query_rank is None else self.query_rank
        return fields


def parse_damping(value) -> str | float:
    if value == "auto" or isinstance(value, float):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"--damping must be 'auto' or a number, got {value!r}") from None
    if number < 0:
        raise UserInputError(f"--damping must be non-negative, got {value}")
    return number


def parse_query_rank(value) -> int | None:
    if value is None or str(value) == "full":
        return None
    try:
        rank = int(value)
    except ValueError:
        raise UserInputError(f"--query-rank must be 'full' or a positive integer, got {value!r}") from None
    if rank < 1:
        raise UserInputError(f"--query-rank must be 'full' or a positive integer, got {value!r}")
    return rank
