"""Run every registered table and findings producer on a run directory and write RUN/analysis/.

Memory stays bounded for large runs: scores are read as memory maps, Pearson correlations are accumulated over
column chunks, and every per-query statistic comes from one pass over the score rows (context.AnalysisContext.rows);
bootstrap intervals and permutation p-values resample those per-query statistics, never the documents.
"""
from __future__ import annotations

import os

import numpy as np

from precompute import rundir
from precompute.analysis import multiplicity, registry, statistics
from precompute.analysis.context import TOP_K, AnalysisContext
from precompute.analysis.inputs import AnalysisInputs, load_inputs

FINDINGS_FILE = rundir.FINDINGS


def findings_document(ctx: AnalysisContext, records: list[dict]) -> dict:
    """findings.json: the records, adjusted for multiplicity (multiplicity.adjust_for_multiplicity), and how they
    were computed."""
    records = multiplicity.adjust_for_multiplicity(records)
    return {"seed": ctx.seed, "n_resamples": ctx.n_resamples, "confidence": 1 - statistics.ALPHA,
            "multiplicity": multiplicity.MULTIPLICITY, "primary_findings": list(multiplicity.PRIMARY_FINDINGS),
            "findings": records, "notes": [record["text"] for record in records]}


def replace_findings(run, prefix: str, records: list[dict]) -> dict:
    """After a later stage (validate, counterfactual): RUN/analysis/findings.json with the records named
    `prefix`... replaced by `records`, every other record kept, the multiplicity adjustment redone over all."""
    path = run.file(rundir.ANALYSIS_DIR, rundir.FINDINGS)
    document = rundir.read_json(path) if os.path.exists(path) else {}
    kept = [r for r in document.get("findings", []) if not str(r.get("name", "")).startswith(prefix)]
    document["findings"] = multiplicity.adjust_for_multiplicity(kept + list(records))
    document["notes"] = [record["text"] for record in document["findings"]]
    rundir.write_json(path, document)
    return document


def analyze(inputs: AnalysisInputs, top_k: int = TOP_K, progress: bool = True, seed: int = statistics.DEFAULT_SEED,
            n_resamples: int = statistics.N_RESAMPLES) -> dict:
    """Every registered table as a DataFrame, plus `findings` (the findings.json document)."""
    ctx = AnalysisContext(inputs, top_k=top_k, seed=seed, n_resamples=n_resamples, progress=progress)
    tables = {}
    for spec in registry.registered_tables():
        frame = spec.compute(ctx)
        if list(frame.columns) != list(spec.columns):
            raise AssertionError(f"analysis table {spec.name}: columns {list(frame.columns)} differ from the "
                                 f"registered {list(spec.columns)}")
        tables[spec.name] = frame
    tables["findings"] = findings_document(ctx, produced_records(ctx))
    return tables


def produced_records(ctx: AnalysisContext) -> list[dict]:
    """Every registered findings producer's records, in registry order (before the multiplicity adjustment)."""
    return [finding.record() for spec in registry.registered_findings() for finding in spec.produce(ctx)]


def write_tables(run: rundir.RunDir, tables: dict) -> None:
    for name, table in tables.items():
        if name == "findings":
            rundir.write_json(run.file(rundir.ANALYSIS_DIR, FINDINGS_FILE), json_ready(table))
        else:
            rundir.write_parquet(run.file(rundir.ANALYSIS_DIR, f"{name}.parquet"), table)


def json_ready(value):
    """JSON-ready: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def analyze_run(run: rundir.RunDir, top_k: int = TOP_K, progress: bool = True) -> dict:
    """Analyze a run directory's scores and write RUN/analysis/ (tables + findings.json)."""
    tables = analyze(load_inputs(run), top_k=top_k, progress=progress)
    write_tables(run, tables)
    return tables
