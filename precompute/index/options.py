"""The index's options — the one place their defaults live — for `index` and for `score` / `run --index`.

`index --run DIR` takes them as `--method`, `--rank`, ...; `score` and `run` (whose `--dtype`, `--seed` mean the
model's) take the same options as `--index-method`, `--index-rank`, ... with the same defaults and checks. No
torch here (the CLI parser imports it).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace

from precompute.pipeline.flag_values import parse_query_rank
from precompute.rundir.errors import UserInputError
from precompute.index.store import SEARCH_KINDS

METHODS = ("lowrank", "eigen", "gaussian")
HELP = {
    "method": "lowrank (default): rank-R factors of each document's whitened gradient; eigen / gaussian: Kronecker "
              "projections of --dim numbers (eigenbasis block / seeded random)",
    "rank": "lowrank: rank per document and module",
    "query_factor_rank": "lowrank: rank kept of each question's whitened gradient when scoring documents (full: "
                         "exact; 8 loses nothing measurable on the demo run and is 4x faster than 32)",
    "dim": "eigen / gaussian: numbers per document",
    "dtype": "stored vectors",
    "seed": "seed of the random matrices",
    "search": "exact: score every document (lowrank default); flat: faiss IndexFlatIP (eigen / gaussian default); "
              "ivfpq: faiss IndexIVFPQ candidates, for corpora past ~1M documents",
    "keys_dim": "lowrank with ivfpq: numbers per document in the projected keys faiss searches",
    "nlist": "ivfpq: inverted lists (default 4·sqrt(N))",
    "pq_m": "ivfpq: sub-quantizers (must divide the dim)",
    "nprobe": "ivfpq: lists searched per question",
}
CHOICES = {"method": METHODS, "dtype": ("float16", "float32"), "search": SEARCH_KINDS}
TEXT_OPTIONS = ("method", "dtype", "search", "query_factor_rank")     # parsed as text; the rest as integers


@dataclass(frozen=True)
class IndexOptions:
    method: str = "lowrank"
    rank: int = 4
    query_factor_rank: int | str | None = 8     # "full" on the command line; None (exact) once checked
    dim: int = 8192
    dtype: str = "float16"
    seed: int = 0
    search: str | None = None                   # None: exact for lowrank, flat for eigen / gaussian
    keys_dim: int = 1024
    nlist: int | None = None
    pq_m: int | None = None
    nprobe: int = 32

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> "IndexOptions":
        dest = prefix.replace("-", "_")
        return cls(**{f.name: getattr(args, dest + f.name) for f in fields(cls)}).checked(prefix)

    def checked(self, prefix: str = "") -> "IndexOptions":
        """Validated and normalised (search resolved, query factor rank int or None); raises UserInputError."""
        flag = lambda name: f"--{prefix}{name.replace('_', '-')}"  # noqa: E731
        query_factor_rank = parse_query_rank(self.query_factor_rank, flag("query_factor_rank"))
        for name in ("rank", "dim", "keys_dim", "nprobe"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{flag(name)} must be a positive integer, got {getattr(self, name)}")
        search = self.search or ("exact" if self.method == "lowrank" else "flat")
        if search == "exact" and self.method != "lowrank":
            raise UserInputError(f"{flag('search')} exact is for {flag('method')} lowrank; eigen / gaussian search "
                                 "with faiss (flat, ivfpq)")
        if search == "flat" and self.method == "lowrank":
            raise UserInputError(f"{flag('method')} lowrank searches exactly ({flag('search')} exact) or with ivfpq "
                                 "candidates")
        return replace(self, search=search, query_factor_rank=query_factor_rank)


def add_index_options(parser, prefix: str = "") -> None:
    """--PREFIXmethod, --PREFIXrank, ... with the defaults of IndexOptions."""
    for field in fields(IndexOptions):
        kind = str if field.name in TEXT_OPTIONS else int
        shown = "" if field.default is None or field.name == "method" else " (default: %(default)s)"
        parser.add_argument(f"--{prefix}{field.name.replace('_', '-')}", dest=prefix.replace("-", "_") + field.name,
                            type=kind, default=None if field.default is None else kind(field.default),
                            choices=CHOICES.get(field.name), help=HELP[field.name] + shown,
                            metavar=None if field.name in CHOICES else field.name.upper())
