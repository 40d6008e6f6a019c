"""What the analysis reads from a run directory: score matrices (memory-mapped), queries, document metadata and
texts. Every documents.parquet column other than id / text / n_tokens / truncated is a candidate categorical
column for the breakdowns (source, and whatever metadata the corpus carried, e.g. the demo's `kind`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from precompute import rundir

NOT_CATEGORICAL = ("id", "text", "n_tokens", "truncated")


@dataclass
class AnalysisInputs:
    scores: np.ndarray                  # [Q, D] float32 (may be a memmap)
    queries: list[dict]                 # score-row order: `id`, `task`, optional `answer`, `steps`, `nats`, ...
    documents: pd.DataFrame             # score-column order: `id` and metadata columns (no text)
    doc_texts: object                   # pyarrow string array or list of str, in score-column order
    layer_scores: np.ndarray | None = None        # [Q, L, D] or None
    normalized_scores: np.ndarray | None = None   # [Q, D] or None
    layer_names: list[str] = field(default_factory=list)
    run_path: str | None = None         # the run directory (tables reading other stages' outputs, e.g. validation)


def _optional_array(path: str):
    return np.load(path, mmap_mode="r", allow_pickle=False) if os.path.exists(path) else None


def load_inputs(run: rundir.RunDir) -> AnalysisInputs:
    table = pq.read_table(run.file(rundir.DOCUMENTS))
    metadata = [name for name in table.column_names if name not in NOT_CATEGORICAL]
    documents = table.select(["id"] + metadata).to_pandas()
    documents["id"] = documents["id"].astype(str)
    layers_path = run.file(rundir.LAYERS)
    return AnalysisInputs(
        scores=np.load(run.file(rundir.SCORES), mmap_mode="r", allow_pickle=False),
        queries=rundir.read_jsonl(run.file(rundir.QUERIES)),
        documents=documents,
        doc_texts=table.column("text").combine_chunks(),
        layer_scores=_optional_array(run.file(rundir.LAYER_SCORES)),
        normalized_scores=_optional_array(run.file(rundir.NORMALIZED_SCORES)),
        layer_names=rundir.read_json(layers_path) if os.path.exists(layers_path) else [],
        run_path=run.path,
    )
