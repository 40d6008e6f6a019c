"""Turn the scoring results into the run directory's files: score tensors from the chunks, documents,
queries, layers and the per-token scores of each query's top/bottom documents (rank 0 only)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute import rundir

log = logging.getLogger("precompute")
TOKEN_COLUMNS = ["query_id", "doc_id", "side", "rank", "token_index", "token", "start", "end", "score"]


@dataclass
class DocumentLengths:
    """Per document, in score-column order: tokens after truncation and whether it was truncated."""
    n_tokens: np.ndarray      # int64 [D]
    truncated: np.ndarray     # bool [D]


def chunk_ranges(n_documents: int, per_chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + per_chunk, n_documents)) for start in range(0, n_documents, per_chunk)]


def write_score_files(run: rundir.RunDir, store: rundir.ChunkStore, ranges, n_queries: int, n_layers: int,
                      n_documents: int) -> DocumentLengths:
    """scores.npy, layer_scores.npy, doc_grad_norms.npy and normalized_scores.npy from the chunks, in order;
    returns the documents' token counts and truncation flags that the chunks carry alongside their scores."""
    scores = rundir.AtomicMemmap(run.file(rundir.SCORES), (n_queries, n_documents))
    layer_scores = rundir.AtomicMemmap(run.file(rundir.LAYER_SCORES), (n_queries, n_layers, n_documents))
    normalized = rundir.AtomicMemmap(run.file(rundir.NORMALIZED_SCORES), (n_queries, n_documents))
    norms = np.zeros(n_documents, dtype=np.float32)
    lengths = DocumentLengths(np.zeros(n_documents, dtype=np.int64), np.zeros(n_documents, dtype=bool))
    try:
        for start, stop in ranges:
            chunk = store.read(start, stop)
            scores.array[:, start:stop] = chunk["scores"]
            layer_scores.array[:, :, start:stop] = chunk["layer_scores"]
            norms[start:stop] = chunk["grad_norms"]
            lengths.n_tokens[start:stop] = chunk["n_tokens"]
            lengths.truncated[start:stop] = chunk["truncated"]
            with np.errstate(divide="ignore", invalid="ignore"):
                normalized.array[:, start:stop] = np.where(chunk["grad_norms"] > 0,
                                                           chunk["scores"] / chunk["grad_norms"], 0.0)
    except BaseException:
        for memmap in (scores, layer_scores, normalized):
            memmap.abort()
        raise
    for memmap in (scores, layer_scores, normalized):
        memmap.commit()
    rundir.write_npy(run.file(rundir.GRAD_NORMS), norms)
    return lengths


def write_documents(run: rundir.RunDir, corpus, lengths: DocumentLengths) -> None:
    rundir.write_parquet(run.file(rundir.DOCUMENTS), pd.DataFrame({
        "id": corpus.ids, "source": corpus.sources, "text": corpus.texts,
        "n_tokens": lengths.n_tokens, "truncated": lengths.truncated}))


def write_queries(run: rundir.RunDir, queries, tokenized, nats) -> None:
    rows = []
    for record, item, value in zip(queries.records, tokenized, nats):
        rows.append({**record, "nats": float(value),
                     "n_completion_tokens": int(sum(label != -100 for label in item.labels))})
    rundir.write_jsonl(run.file(rundir.QUERIES), rows)


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


def extreme_documents(row: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Indices of the k largest (descending) and k smallest (ascending) scores of one query."""
    order = np.argsort(row, kind="stable")
    return {"top": order[::-1][:k], "bottom": order[:k]}


def select_queries(pq, rows: list[int]):
    """The preconditioned gradients of only some queries (token scores cost grows with the query count)."""
    import torch
    from engine.precondition import PreconditionedQueries

    index = torch.as_tensor(rows, dtype=torch.long)
    gradients = {name: tuple(t[index] for t in value) if isinstance(value, tuple) else value[index]
                 for name, value in pq.gradients.items()}
    return PreconditionedQueries(pq.modules, pq.damping, gradients, len(rows))


def write_token_scores(run: rundir.RunDir, session, pq, corpus, queries, max_length: int, k: int,
                       progress: bool) -> None:
    """Per-token split (engine.scoring.token_scores) of each query's top/bottom k documents; only those
    documents are tokenized (again, exactly as for scoring)."""
    from engine.batches import tokenize_documents
    from engine.scoring import token_scores

    scores = np.load(run.file(rundir.SCORES), mmap_mode="r", allow_pickle=False)
    wanted: dict[int, list[tuple[int, str, int]]] = {}      # doc -> [(query row, side, rank)]
    for row in range(scores.shape[0]):
        for side, docs in extreme_documents(np.asarray(scores[row]), min(k, scores.shape[1])).items():
            for rank, doc in enumerate(docs, start=1):
                wanted.setdefault(int(doc), []).append((row, side, rank))
    frames = []
    for doc in tqdm(sorted(wanted), desc="token scores", unit="doc", disable=not progress):
        item = tokenize_documents(session.tokenizer, [corpus.texts[doc]], max_length)[0]
        rows = sorted({row for row, _, _ in wanted[doc]})
        per_token = token_scores(session.model, session.tracked, select_queries(pq, rows), item).numpy()
        position = {row: i for i, row in enumerate(rows)}          # per_token is [len(rows), T]
        tokens = [session.tokenizer.decode([token_id]) for token_id in item.input_ids]
        offsets = np.asarray(token_offsets(session.tokenizer, corpus.texts[doc], item.input_ids), dtype=np.int64)
        for row, side, rank in wanted[doc]:
            frames.append(pd.DataFrame({
                "query_id": queries.records[row]["id"], "doc_id": corpus.ids[doc], "side": side, "rank": rank,
                "token_index": np.arange(len(tokens), dtype=np.int64), "token": tokens,
                "start": offsets[:, 0], "end": offsets[:, 1],
                "score": per_token[position[row]].astype(np.float32)}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TOKEN_COLUMNS)
    order = {"top": 0, "bottom": 1}
    query_order = {record["id"]: i for i, record in enumerate(queries.records)}
    table = table.sort_values(["query_id", "side", "rank", "token_index"],
                              key=lambda c: c.map(query_order) if c.name == "query_id" else (
                                  c.map(order) if c.name == "side" else c)).reset_index(drop=True)
    rundir.write_parquet(run.file(rundir.TOKEN_SCORES), table[TOKEN_COLUMNS])
