"""The token-score stage: per-token split g_tᵀ P(G_q) a_t of each query's top/bottom k documents.

Runs after scoring and before analysis; reads the run's scores.npy (the score stage's output), re-tokenizes
only the documents some query needs, runs each of them once (in batches) for all the queries that need it, and
hands the table to the run directory's writer.
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


class TokenText:
    """Each token id's text (tokenizer.decode of that id alone), decoded once per id."""

    def __init__(self, tokenizer):
        self.tokenizer, self.known = tokenizer, {}

    def __call__(self, input_ids: list[int]) -> list[str]:
        for token_id in set(input_ids) - self.known.keys():
            self.known[token_id] = self.tokenizer.decode([token_id])
        return [self.known[token_id] for token_id in input_ids]


def document_rows(needs: list[tuple[int, str, int]], rows: list[int], per_token: np.ndarray, query_ids: list[str],
                  doc_id: str, tokens: list[str], offsets: np.ndarray) -> dict[str, np.ndarray]:
    """The table's columns for one document's (query row, side, rank) entries; per_token [len(rows), T]."""
    n, m, position = len(tokens), len(needs), {row: i for i, row in enumerate(rows)}
    return {"query_id": np.repeat(np.asarray([query_ids[row] for row, _, _ in needs], dtype=object), n),
            "doc_id": np.full(m * n, doc_id, dtype=object),
            "side": np.repeat(np.asarray([side for _, side, _ in needs], dtype=object), n),
            "rank": np.repeat(np.asarray([rank for _, _, rank in needs], dtype=np.int64), n),
            "token_index": np.tile(np.arange(n, dtype=np.int64), m),
            "token": np.tile(np.asarray(tokens, dtype=object), m),
            "start": np.tile(offsets[:, 0], m), "end": np.tile(offsets[:, 1], m),
            "score": per_token[[position[row] for row, _, _ in needs]].astype(np.float32).reshape(-1)}


def token_stage(run: RunDir, session, pq, corpus, queries, max_length: int, k: int, batch_size: int,
                progress: bool) -> None:
    """Each wanted document runs once (engine.scoring.split_by_token, padded length-sorted batches), split by
    token for every query whose top or bottom k holds it."""
    from engine.batches import tokenize_documents
    from engine.scoring import split_by_token

    wanted = wanted_documents(read_npy(run.file(layout.SCORES)), k)
    columns = sorted(wanted)
    items = tokenize_documents(session.tokenizer, [corpus.texts[doc] for doc in columns], max_length)
    rows = [sorted({row for row, _, _ in wanted[doc]}) for doc in columns]
    query_ids, text_of = [record["id"] for record in queries.records], TokenText(session.tokenizer)
    parts = []
    bar = tqdm(total=len(columns), desc="token scores", unit="doc", disable=not progress)
    for j, per_token in split_by_token(session.model, session.tracked, pq, items, rows, batch_size,
                                       session.tokenizer.pad_token_id):
        doc, ids = columns[j], items[j].input_ids
        offsets = np.asarray(token_offsets(session.tokenizer, corpus.texts[doc], ids), dtype=np.int64).reshape(-1, 2)
        parts.append(document_rows(wanted[doc], rows[j], per_token.numpy(), query_ids, corpus.ids[doc],
                                   text_of(ids), offsets))
        bar.update(1)
    bar.close()
    table = pd.DataFrame({name: np.concatenate([part[name] for part in parts]) for name in layout.TOKEN_COLUMNS}) \
        if parts else pd.DataFrame(columns=list(layout.TOKEN_COLUMNS))
    write_token_scores(run, table, query_ids)
