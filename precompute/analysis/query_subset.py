"""The run's findings recomputed on a subset of its queries (a saved query set, e.g. "slope, correct only").

The subset is analysed as if it were the whole run: its score rows (and per-layer and normalised rows) and queries
are taken out of the inputs, and every registered findings producer runs on them with the same seed and number of
resamples; the multiplicity adjustment is over the subset's findings. Findings that read another stage's files
(tail-patch validation, PBRF/LDS) are not recomputed: those files hold the whole run's queries, so they are left out
(`run_path` is None), exactly as for a run directory holding only the subset's queries and no such files.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from precompute.analysis import statistics
from precompute.analysis.context import AnalysisContext
from precompute.analysis.inputs import AnalysisInputs
from precompute.analysis.runner import findings_document, produced_records


class QuerySubsetError(ValueError):
    """Query ids that are not the run's; the message is written for a person."""


def subset_rows(inputs: AnalysisInputs, query_ids) -> np.ndarray:
    """Score rows of `query_ids`, in the run's row order (duplicates once)."""
    positions = {str(query["id"]): row for row, query in enumerate(inputs.queries)}
    unknown = [str(q) for q in query_ids if str(q) not in positions]
    if unknown:
        raise QuerySubsetError(f"{len(unknown)} query id(s) are not in this run, e.g. {unknown[0]!r}")
    return np.asarray(sorted({positions[str(q)] for q in query_ids}), dtype=np.int64)


def restricted_inputs(inputs: AnalysisInputs, query_ids) -> AnalysisInputs:
    """The inputs of the queries `query_ids` only (their rows read into memory), without the run directory."""
    rows = subset_rows(inputs, query_ids)

    def taken(array):
        return None if array is None else np.asarray(array[rows])
    return replace(inputs, scores=np.asarray(inputs.scores[rows]), queries=[inputs.queries[i] for i in rows],
                   layer_scores=taken(inputs.layer_scores), normalized_scores=taken(inputs.normalized_scores),
                   run_path=None)


def subset_findings(inputs: AnalysisInputs, query_ids, seed: int = statistics.DEFAULT_SEED,
                    n_resamples: int = statistics.N_RESAMPLES) -> dict:
    """The findings document (runner.findings_document) of the subset `query_ids`, with the ids it covers."""
    if not len(query_ids):
        raise QuerySubsetError("the set holds no queries")
    ctx = AnalysisContext(restricted_inputs(inputs, query_ids), seed=seed, n_resamples=n_resamples, progress=False)
    document = findings_document(ctx, produced_records(ctx))
    document["query_ids"] = [str(q) for q in ctx.query_ids]
    return document
