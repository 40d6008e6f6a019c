"""query_summary: per query, what the statistics know about it: information content, correctness, the answer
parsed from its completion."""
from __future__ import annotations

import pandas as pd

from precompute.analysis import occurrence
from precompute.analysis.registry import table


@table("query_summary", "per query: completion information, low-information flag, correctness, parsed answer", {
    "query_id": "query id", "task": "query task", "nats": "−log p(completion | prompt) in nats (NaN if unknown)",
    "low_information": "nats < MIN_NATS: left out of per-nat statistics",
    "correct": "the completion's answer equals the reference (None without a reference answer)",
    "reference_answer": "the query's `answer` field (\"\" if none)",
    "completion_answer": "the answer parsed from the completion (\"\" if none could be parsed)",
    "completion_steps": "intermediate results parsed from the completion, final answer excluded"})
def query_summary(ctx) -> pd.DataFrame:
    steps = [[value for target, value in targets if target.startswith("step_")]
             for targets in ctx.targets["completion"]]
    return pd.DataFrame({
        "query_id": ctx.query_ids, "task": ctx.tasks, "nats": ctx.nats, "low_information": ctx.low_information,
        "correct": ctx.correct, "reference_answer": [occurrence.query_answer(q, "reference") for q in ctx.queries],
        "completion_answer": [occurrence.query_answer(q, "completion") for q in ctx.queries],
        "completion_steps": [" ".join(values) for values in steps]})
