"""The token-score stage: per-token split g_tᵀ P(G_q) a_t of each query's top/bottom k documents.

Runs after scoring and before analysis; reads the run's scores.npy (the score stage's output), re-tokenizes
only the documents some query needs, and hands the table to the run directory's writer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute.analysis.ranking import top_and_bottom
from precompute.rundir import RunDir, layout, read_npy
from precompute.rundir.writers import write_token_scores


def token_offsets(tokenizer, text: str, input_ids: list[int]) -> list[tuple[int, int]]:
    """Character span of each token in `text`; (-1, -1) for special tokens or when the spans cannot be had."""
    try:
        encoded = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):
        return [(-1, -1)] * len(input_ids)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    if ids[:len(input_ids)] != list(input_ids):
        return [(-1, -1)] * len(input_ids)
    return [(int(s), int(e)) if e > s else (-1, -1) for s, e in offsets[:len(input_ids)]]


def wanted_documents(scores: np.ndarray, k: int) -> dict[int, list[tuple[int, str, int]]]:
    """document column -> [(query row, side, rank)] for every query's top and bottom k."""
    wanted: dict[int, list[tuple[int, str, int]]] = {}
    for row in range(scores.shape[0]):
        top, bottom = top_and_bottom(np.asarray(scores[row]), min(k, scores.shape[1]))
        for side, docs in (("top", top), ("bottom", bottom)):
            for rank, doc in enumerate(docs, start=1):
                wanted.setdefault(int(doc), []).append((row, side, rank))
    return wanted


def token_stage(run: RunDir, session, pq, corpus, queries, max_length: int, k: int, progress: bool) -> None:
    from engine.batches import tokenize_documents
    from engine.scoring import token_scores

    wanted = wanted_documents(read_npy(run.file(layout.SCORES)), k)
    frames = []
    for doc in tqdm(sorted(wanted), desc="token scores", unit="doc", disable=not progress):
        item = tokenize_documents(session.tokenizer, [corpus.texts[doc]], max_length)[0]
        rows = sorted({row for row, _, _ in wanted[doc]})
        per_token = token_scores(session.model, session.tracked, pq.select(rows), item).numpy()
        position = {row: i for i, row in enumerate(rows)}          # per_token is [len(rows), T]
        tokens = [session.tokenizer.decode([token_id]) for token_id in item.input_ids]
        offsets = np.asarray(token_offsets(session.tokenizer, corpus.texts[doc], item.input_ids), dtype=np.int64)
        for row, side, rank in wanted[doc]:
            frames.append(pd.DataFrame({
                "query_id": queries.records[row]["id"], "doc_id": corpus.ids[doc], "side": side, "rank": rank,
                "token_index": np.arange(len(tokens), dtype=np.int64), "token": tokens,
                "start": offsets[:, 0], "end": offsets[:, 1],
                "score": per_token[position[row]].astype(np.float32)}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(layout.TOKEN_COLUMNS))
    write_token_scores(run, table, [record["id"] for record in queries.records])
