"""top_docs: each query's top and bottom documents with the answer / step matches of what the model completed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import ranking
from precompute.analysis.context import stacked_frame
from precompute.analysis.registry import row_statistic, table

COLUMNS = {
    "query_id": "query id",
    "task": "query task",
    "side": "`top` (highest scores) or `bottom` (lowest)",
    "rank": "1..k within the side",
    "doc_index": "column in scores.npy",
    "doc_id": "document id",
    "source": "document source",
    "score": "raw influence score",
    "score_per_nat": "score / the query's completion nats; NaN for low-information queries (< MIN_NATS nats)",
    "score_normalized": "the document's normalized_scores.npy entry (NaN if the run has none)",
    "contains_answer": "the document contains the completion's answer (basis `completion`)",
    "steps_found": "how many of the completion's intermediate steps (final answer excluded) it contains",
    "n_steps": "the query's number of intermediate steps",
}


@row_statistic("top_docs")
def chosen_documents(ctx, row) -> tuple[np.ndarray, np.ndarray]:
    k = min(ctx.top_k, ctx.n_docs)
    return row.descending[:k], row.ascending[:k]


def _hits(ctx, chosen: np.ndarray, value: str) -> np.ndarray:
    return np.isin(chosen, ctx.search.containing(value), assume_unique=True)


@table("top_docs", "each query's top and bottom k documents (k = --top-k, default 100)", COLUMNS)
def top_docs(ctx) -> pd.DataFrame:
    sources = ctx.inputs.documents["source"].astype(str).to_numpy(dtype=object) \
        if "source" in ctx.inputs.documents else np.full(ctx.n_docs, "unknown", dtype=object)
    doc_ids = ctx.inputs.documents["id"].to_numpy(dtype=object)
    parts = []
    for index, (top, bottom) in enumerate(ctx.rows["top_docs"]):
        row = np.asarray(ctx.inputs.scores[index], dtype=np.float32)
        targets = ctx.targets["completion"][index]
        normalized = ctx.inputs.normalized_scores
        for side, chosen in (("top", top), ("bottom", bottom)):
            answer = [value for name, value in targets if name == "answer"]
            steps = [_hits(ctx, chosen, value) for name, value in targets if name.startswith("step_")]
            parts.append({
                "query_id": ctx.query_ids[index], "task": ctx.tasks[index], "side": side,
                "rank": np.arange(1, len(chosen) + 1), "doc_index": chosen, "doc_id": doc_ids[chosen],
                "source": sources[chosen], "score": row[chosen].astype(np.float64),
                "score_per_nat": ranking.per_nat(row[chosen], ctx.nats[index]),
                "score_normalized": (np.asarray(normalized[index][chosen], dtype=np.float64) if normalized is not None
                                     else np.full(len(chosen), np.nan)),
                "contains_answer": _hits(ctx, chosen, answer[0]) if answer else np.zeros(len(chosen), dtype=bool),
                "steps_found": np.sum(steps, axis=0).astype(np.int64) if steps else np.zeros(len(chosen), np.int64),
                "n_steps": len(steps),
            })
    return stacked_frame(parts, list(COLUMNS))
