"""The settings of one run — the one place their defaults live — and the fingerprints that decide re-use.

The CLI builds its flags' defaults from this dataclass and turns the parsed flags into one `Settings`
(`Settings.from_args`), which every command and the demo receive; nothing else keeps defaults.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, fields, replace

from precompute.inputs.corpus_shards import corpus_sha256
from precompute.rundir.errors import UserInputError
from precompute.index.options import IndexOptions
from precompute.pipeline.flag_values import keyword_or_number, parse_bytes, parse_query_rank
from precompute.rundir import sha256_of_file


@dataclass
class Settings:
    model: str = ""
    corpus: str = ""
    out: str = ""
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
    token_topk: int = 50                 # per side: every card the dashboard's Queries page shows (up to 50)
    chunk_docs: int | None = None
    top_k: int = 100
    validate: bool = False               # run the tail-patch validation (precompute.validation.command) after analysis
    counterfactual: bool = False         # then PBRF responses + LDS (precompute.counterfactual.command), default options
    index: IndexOptions | None = None    # build RUN/index/ in the scoring pass (score / run --index)
    memory_per_rank: str | None = None   # refuse up front when the plan (precompute.plan.work) needs more
    module_shards: int = 1               # factors split by module over this many ranks (must divide the world size)
    factor_dtype: str = "float32"        # storage of the factors (the eigendecomposition is float64 regardless)
    memory_budget: int | None = None     # bytes per rank for the queries in scoring (None: an 8 GiB dense cache)
    measurement: str = "completion"      # which completion tokens are measured (engine.task.TASKS: completion, answer)

    @classmethod
    def default(cls, name: str):
        return next(f.default for f in fields(cls) if f.name == name)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        if values.get("index"):                  # --index, with its --index-* options
            values["index"] = IndexOptions.from_args(args, prefix="index-")
        else:
            values.pop("index", None)
        return cls(**values).checked()

    @classmethod
    def from_manifest(cls, manifest: dict, **chosen) -> "Settings":
        """The settings a run recorded (manifest_fields), normalised — the one way a stage reads them back;
        `chosen`: what the reader decides anew (model path, out, device). Fields the manifest lacks (older runs)
        take this class's defaults."""
        values = {f.name: manifest[f.name] for f in fields(cls) if f.name in manifest and f.name != "index"}
        if isinstance(manifest.get("index"), dict):
            values["index"] = IndexOptions(**manifest["index"])
        values.update(chosen)
        return cls(**values).normalised()

    def with_changes(self, **changes) -> "Settings":
        return replace(self, **changes).checked()

    def normalised(self) -> "Settings":
        """Damping 'auto' or float, query rank int or None, memory budget in bytes; raises UserInputError."""
        damping = keyword_or_number(self.damping, "--damping", "auto", float, zero_allowed=True)
        if self.token_topk < 0:
            raise UserInputError(f"--token-topk must be >= 0, got {self.token_topk}")
        budget = None if self.memory_budget is None else parse_bytes(self.memory_budget, "--memory-budget")
        return replace(self, damping=damping, query_rank=parse_query_rank(self.query_rank), memory_budget=budget)

    def checked(self) -> "Settings":
        """Normalised, and consistent with this process's ranks (a run being started); raises UserInputError."""
        if self.index is not None and self.module_shards > 1:
            raise UserInputError("--index needs every module's factors on one rank: use --module-shards 1")
        if self.module_shards > 1:
            from engine.distributed import rank_and_world
            world = rank_and_world()[1]
            if world % self.module_shards:
                raise UserInputError(f"--module-shards {self.module_shards} must divide the number of ranks ({world})")
        return self.normalised()

    def task(self):
        """The engine's Task for this run's measurement (engine.task.TASKS)."""
        from engine.task import TASKS
        return TASKS[self.measurement]

    def query_arguments(self):
        """The engine's QueryArguments for this run (damping, query rank): the one place they are built."""
        from engine.precondition import QueryArguments
        return QueryArguments(damping=self.damping, rank=self.query_rank)

    @property
    def documents_per_chunk(self) -> int:
        return self.chunk_docs or self.batch_size * 64

    def fit_key(self) -> dict:
        """Everything the factors depend on; equal keys mean the factors in the run can be re-used."""
        return {"model": os.path.abspath(self.model) if os.path.exists(self.model) else self.model,
                "corpus_sha256": corpus_sha256(self.corpus), "strategy": self.strategy, "fisher": self.fisher,
                "modules": self.modules, "factor_docs": self.factor_docs, "max_length": self.max_length,
                "batch_size": self.batch_size, "dtype": self.dtype, "seed": self.seed,
                **({} if self.factor_dtype == "float32" else {"factor_dtype": self.factor_dtype})}

    def score_key(self, fit_key: dict) -> dict:
        """Everything the score chunks depend on (world size excluded: chunks are global document ranges)."""
        key = {**fit_key, "queries_sha256": sha256_of_file(self.queries), "damping": self.damping,
               "query_rank": self.query_rank, "chunk_docs": self.documents_per_chunk}
        if self.measurement != "completion":              # (absent for the default: earlier runs' chunks stay valid)
            key["measurement"] = self.measurement
        return key if self.index is None else {**key, "index": asdict(self.index)}   # chunks carry its vectors

    def manifest_fields(self) -> dict:
        values = asdict(self)
        for name in ("out", "overwrite", "corpus", "queries", "chunk_docs", "top_k"):
            values.pop(name)
        values["query_rank"] = "full" if self.query_rank is None else self.query_rank
        return values
