"""The analysis registry: every table, findings producer and per-query statistic is registered here once.

A table module under precompute/analysis/tables/ declares its table with `@table(name, doc, columns)` on a
function `compute(ctx) -> DataFrame`; findings with `@findings(name)` on `produce(ctx) -> list[Finding]`; and,
when it needs something from each query's full ranking, `@row_statistic(name)` on `collect(ctx, row)` (all row
statistics share one pass over the score rows, see context.AnalysisContext.rows). Table modules are found with
pkgutil, so adding a table is adding one module (and its test). The pipeline writes what is registered, the
dashboard lists it and docs/run-directory.md is rendered from it (precompute/analysis/docs.py).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TableSpec:
    name: str                      # file name without .parquet
    doc: str                       # one line: what a row is
    columns: dict[str, str]        # column -> meaning, in column order
    compute: Callable              # compute(ctx) -> pandas.DataFrame with exactly `columns`
    module: str


@dataclass(frozen=True)
class FindingsSpec:
    name: str
    produce: Callable              # produce(ctx) -> list[statistics.Finding]
    module: str
    order: int                     # position in findings.json (lower first)


@dataclass(frozen=True)
class RowStatisticSpec:
    name: str
    collect: Callable              # collect(ctx, row: context.RowView) -> anything, one value per query row
    module: str


_TABLES: dict[str, TableSpec] = {}
_FINDINGS: dict[str, FindingsSpec] = {}
_ROW_STATISTICS: dict[str, RowStatisticSpec] = {}
_discovered = False


def _register(registry: dict, spec) -> None:
    old = registry.get(spec.name)
    if old is not None and old.module != spec.module:
        raise ValueError(f"analysis: {spec.name!r} registered by both {old.module} and {spec.module}")
    registry[spec.name] = spec


def table(name: str, doc: str, columns: dict[str, str]):
    """Register `compute(ctx) -> DataFrame` as the table RUN/analysis/<name>.parquet."""
    def register(compute):
        _register(_TABLES, TableSpec(name, doc, dict(columns), compute, compute.__module__))
        return compute
    return register


def findings(name: str, order: int = 100):
    """Register `produce(ctx) -> list[Finding]`; its records go into RUN/analysis/findings.json (by `order`)."""
    def register(produce):
        _register(_FINDINGS, FindingsSpec(name, produce, produce.__module__, order))
        return produce
    return register


def row_statistic(name: str):
    """Register `collect(ctx, row) -> value`, run once per query row in the shared pass; read as ctx.rows[name]."""
    def register(collect):
        _register(_ROW_STATISTICS, RowStatisticSpec(name, collect, collect.__module__))
        return collect
    return register


def discover() -> None:
    """Import every module of precompute.analysis.tables (in name order), which registers what they define."""
    global _discovered
    if _discovered:
        return
    from precompute.analysis import tables
    for module in sorted(pkgutil.iter_modules(tables.__path__), key=lambda m: m.name):
        importlib.import_module(f"{tables.__name__}.{module.name}")
    _discovered = True


def registered_tables() -> list[TableSpec]:
    discover()
    return list(_TABLES.values())


def registered_findings() -> list[FindingsSpec]:
    discover()
    return sorted(_FINDINGS.values(), key=lambda spec: (spec.order, spec.name))


def registered_row_statistics() -> list[RowStatisticSpec]:
    discover()
    return list(_ROW_STATISTICS.values())


def __getattr__(name: str):
    """`TABLE_NAMES`: the registered table names in order (discovered on first use)."""
    if name == "TABLE_NAMES":
        return tuple(spec.name for spec in registered_tables())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
