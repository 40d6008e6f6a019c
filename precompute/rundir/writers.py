"""Writers for a run directory's data files, used by the pipeline, `synth` and imports alike (no torch).

Each writer fixes one file's columns, dtypes and order (docs/run-directory.md); all writes are atomic.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from precompute.rundir import layout
from precompute.rundir.directory import RunDir
from precompute.rundir.files import AtomicMemmap, atomic_path, write_json, write_jsonl, write_npy, write_parquet

NORMALIZE_BLOCK = 1 << 16      # document columns per block when deriving normalized_scores.npy


def normalized_scores(scores: np.ndarray, grad_norms: np.ndarray) -> np.ndarray:
    """Gradient-normalised scores: score / ‖∇L_doc‖ (unpreconditioned document gradient), 0 where the norm is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(grad_norms > 0, scores / grad_norms, 0.0).astype(np.float32)


class ScoreFiles:
    """scores.npy [Q, D], layer_scores.npy [Q, L, D], doc_grad_norms.npy [D] filled in place (any order of
    rows or column blocks); `commit()` derives normalized_scores.npy and moves every file into place at once."""

    def __init__(self, run: RunDir, n_queries: int, n_layers: int, n_documents: int):
        self.run = run
        self.scores = AtomicMemmap(run.file(layout.SCORES), (n_queries, n_documents))
        self.layer_scores = AtomicMemmap(run.file(layout.LAYER_SCORES), (n_queries, n_layers, n_documents))
        self.grad_norms = np.zeros(n_documents, dtype=np.float32)

    def put_columns(self, start: int, stop: int, scores: np.ndarray, layer_scores: np.ndarray,
                    grad_norms: np.ndarray) -> None:
        self.scores.array[:, start:stop] = scores
        self.layer_scores.array[:, :, start:stop] = layer_scores
        self.grad_norms[start:stop] = grad_norms

    def put_row(self, row: int, scores: np.ndarray, layer_scores: np.ndarray) -> None:
        self.scores.array[row] = scores
        self.layer_scores.array[row] = layer_scores

    def commit(self) -> None:
        n_queries, n_documents = self.scores.array.shape
        normalized = AtomicMemmap(self.run.file(layout.NORMALIZED_SCORES), (n_queries, n_documents))
        try:
            for start in range(0, n_documents, NORMALIZE_BLOCK):
                stop = min(start + NORMALIZE_BLOCK, n_documents)
                normalized.array[:, start:stop] = normalized_scores(self.scores.array[:, start:stop],
                                                                    self.grad_norms[start:stop])
        except BaseException:
            normalized.abort()
            self.abort()
            raise
        for memmap in (self.scores, self.layer_scores, normalized):
            memmap.commit()
        write_npy(self.run.file(layout.GRAD_NORMS), self.grad_norms)

    def abort(self) -> None:
        for memmap in (self.scores, self.layer_scores):
            memmap.abort()


def write_documents(run: RunDir, ids, sources, texts, n_tokens, truncated, metadata: dict | None = None) -> None:
    """documents.parquet in score-column order; `metadata` columns (kept from the corpus) follow the fixed ones."""
    frame = pd.DataFrame({"id": list(ids), "source": list(sources), "text": list(texts),
                          "n_tokens": np.asarray(n_tokens, dtype=np.int64),
                          "truncated": np.asarray(truncated, dtype=bool)})
    for name, values in (metadata or {}).items():
        if name in layout.DOCUMENT_COLUMNS:
            raise ValueError(f"metadata column {name!r} clashes with a fixed documents.parquet column")
        frame[name] = list(values)
    write_parquet(run.file(layout.DOCUMENTS), frame)


def write_queries(run: RunDir, records: list[dict]) -> None:
    """queries.jsonl in score-row order: every input field kept, plus `nats` and `n_completion_tokens`."""
    write_jsonl(run.file(layout.QUERIES), records)


def write_layers(run: RunDir, names: list[str]) -> None:
    write_json(run.file(layout.LAYERS), list(names))


def write_token_scores(run: RunDir, table: pd.DataFrame, query_order: list[str]) -> None:
    """token_scores.parquet sorted by (query in row order, side top→bottom, rank, token_index)."""
    columns = list(layout.TOKEN_COLUMNS)
    if table.empty:
        table = pd.DataFrame(columns=columns)
    table = table.astype({"rank": np.int64, "token_index": np.int64, "start": np.int64, "end": np.int64,
                          "score": np.float32})
    position = {query_id: i for i, query_id in enumerate(query_order)}
    sides = {"top": 0, "bottom": 1}
    table = table.sort_values(["query_id", "side", "rank", "token_index"],
                              key=lambda c: c.map(position) if c.name == "query_id" else (
                                  c.map(sides) if c.name == "side" else c)).reset_index(drop=True)
    write_parquet(run.file(layout.TOKEN_SCORES), table[columns])


def write_factor_files(directory: str, tensors: dict[str, dict[str, np.ndarray]], meta: dict) -> None:
    """factors.safetensors (keys `module/name`, the format engine.factors.Factors.load reads) + meta.json."""
    from safetensors.numpy import save_file

    flat = {f"{module}/{name}": np.ascontiguousarray(array)
            for module, named in tensors.items() for name, array in named.items()}
    os.makedirs(directory, exist_ok=True)
    with atomic_path(os.path.join(directory, layout.FACTOR_TENSORS)) as temporary:
        save_file(flat, temporary)
    write_json(os.path.join(directory, layout.FACTOR_META), meta)
