"""The index's compressors and its search: from a question's preconditioned gradient to its top and bottom documents.

Methods (index manifest `method`):
- "lowrank" (default): per-document rank-R factors of the whitened gradient (engine.lowrank). Every document's
  estimate is computed from its factors (blocked, memory-mapped); with `search.kind == "ivfpq"` a faiss IVF-PQ
  index over small projected keys (engine.projection, "eigen" or "gaussian") picks candidates per side first,
  which are then scored from their factors — for corpora too large to score every document per question.
- "eigen", "gaussian": Kronecker projections (engine.projection); the estimate is an inner product, searched with
  faiss (exact IndexFlatIP, or IVF-PQ), candidates re-scored against the stored vectors.
"""
from __future__ import annotations

import hashlib

import numpy as np

from precompute.index import store as index_store
from precompute.analysis.ranking import top_and_bottom

SCORE_BLOCK = 8192          # documents per block when scoring every document
CACHE_BYTES = 4 * 2**30     # stored vectors up to this size (as float32) are held in memory by a question server
CANDIDATES = 60             # ivfpq: candidates per side = CANDIDATES · k, scored from their factors (recall: docs/ask.md)


def tensors_sha256(flat: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(flat):
        digest.update(name.encode() + b"\0")
        digest.update(flat[name].detach().cpu().double().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_compressors(method: str, factors, rank: int, dim: int, keys_dim: int, seed: int, damping, search: str,
                      query_factor_rank: int | None):
    """(the compressor whose vectors are stored, the keys projection for faiss or None)."""
    from engine.lowrank import lowrank_whitened
    from engine.projection import build_projection

    if method != "lowrank":
        return build_projection(method, factors, dim, seed, damping), None
    keys = None
    if search == "ivfpq":
        keys_method = "eigen" if factors.strategy in ("kfac", "ekfac") else "gaussian"
        keys = build_projection(keys_method, factors, keys_dim, seed, damping)
    return lowrank_whitened(factors, rank, seed, query_factor_rank), keys


def save_compressors(run_path: str, compressor, keys) -> None:
    from safetensors.torch import save

    for name, value in ((index_store.COMPRESSOR, compressor), (index_store.KEYS_PROJECTION, keys)):
        if value is not None:
            with index_store.atomic_path(index_store.index_path(run_path, name)) as temporary:
                with open(temporary, "wb") as handle:
                    handle.write(save(value.tensors()))


def load_compressors(run_path: str, manifest: dict):
    from safetensors.torch import load_file

    from engine.lowrank import LowRankWhitened
    from engine.projection import Projection

    flat = load_file(index_store.index_path(run_path, index_store.COMPRESSOR))
    if tensors_sha256(flat) != manifest.get("compressor_sha256"):
        raise index_store.IndexUnavailable(f"{run_path}: the index's {index_store.COMPRESSOR} does not match its "
                                           f"manifest; rebuild it with `python -m precompute index --run {run_path} "
                                           "--overwrite`")
    if manifest["method"] == "lowrank":
        compressor = LowRankWhitened.from_tensors(manifest["modules"], manifest["rank"], manifest["seed"], flat,
                                                  manifest.get("query_factor_rank"))
    else:
        compressor = Projection.from_tensors(manifest["method"], manifest["seed"], manifest["modules"], flat)
    keys = None
    if manifest.get("keys"):
        keys = Projection.from_tensors(manifest["keys"]["method"], manifest["seed"], manifest["modules"],
                                       load_file(index_store.index_path(run_path, index_store.KEYS_PROJECTION)))
    return compressor, keys


class IndexSearch:
    """A built index opened for questions: compressors, memory-mapped vectors (and keys), faiss index."""

    def __init__(self, run_path: str, manifest: dict, nprobe: int | None = None, cache_bytes: int = CACHE_BYTES):
        import torch

        self.manifest = manifest
        self.compressor, self.keys = load_compressors(run_path, manifest)
        self.vectors = index_store.open_vectors(run_path, manifest)
        self.cached = None              # float32 blocks held once, when they fit in cache_bytes (a question server)
        if self.vectors.shape[0] * self.vectors.shape[1] * 4 <= cache_bytes:
            self.cached = [self.prepared(torch.from_numpy(np.array(rows, dtype=np.float32)))
                           for rows in np.array_split(self.vectors, max(1, -(-len(self.vectors) // SCORE_BLOCK)))]
        self.search = None
        if manifest["search"]["kind"] != "exact":
            self.search = index_store.read_search(index_store.index_path(run_path, index_store.SEARCH),
                                                  nprobe or manifest["search"].get("nprobe"))

    @property
    def lowrank(self) -> bool:
        return self.manifest["method"] == "lowrank"

    def prepared(self, rows):
        """A block of stored vectors as the scoring wants it (per-module factor rows for lowrank)."""
        from engine.lowrank import split_vectors

        return (split_vectors(self.compressor, rows) if self.lowrank else rows), len(rows)

    def blocks(self, columns: np.ndarray | None):
        """(positions in the result, prepared block) block by block, for every document or `columns`."""
        import torch

        if columns is None:
            if self.cached is not None:
                start = 0
                for block in self.cached:
                    yield slice(start, start + block[1]), block
                    start += block[1]
                return
            for start in range(0, len(self.vectors), SCORE_BLOCK):
                stop = min(start + SCORE_BLOCK, len(self.vectors))
                yield slice(start, stop), self.prepared(torch.from_numpy(np.array(self.vectors[start:stop],
                                                                                    dtype=np.float32)))
            return
        order = np.argsort(columns, kind="stable")
        for start in range(0, len(columns), SCORE_BLOCK):
            positions = order[start:start + SCORE_BLOCK]
            wanted = np.asarray(columns)[positions]                     # ascending: memory-map friendly
            yield positions, self.prepared(torch.from_numpy(np.array(self.vectors[wanted], dtype=np.float32)))

    def estimate(self, pq, columns: np.ndarray | None = None) -> np.ndarray:
        """[Q, N] estimated scores of every document (or those at `columns`), from the stored vectors."""
        from engine.lowrank import score_parts

        queries = self.compressor.query_factors(pq) if self.lowrank else self.compressor.query_vectors(pq)
        out = np.zeros((pq.n_queries, len(self.vectors) if columns is None else len(columns)), dtype=np.float32)
        for positions, (rows, n) in self.blocks(columns):
            values = score_parts(self.compressor, rows, queries, n) if self.lowrank else queries @ rows.t()
            out[:, positions] = values.numpy()
        return out

    def candidates(self, pq, k: int) -> np.ndarray | None:
        """Documents worth scoring for one question (faiss, both sides), or None: score every document."""
        if self.search is None:
            return None
        query = (self.keys or self.compressor).query_vectors(pq)[0].numpy()
        wanted = min(len(self.vectors), CANDIDATES * k if self.lowrank or self.manifest["search"]["kind"] != "flat"
                     else k)
        found = [self.search.search(np.ascontiguousarray(sign * query[None], dtype=np.float32), wanted)[1][0]
                 for sign in (1.0, -1.0)]
        return np.unique(np.concatenate(found)[np.concatenate(found) >= 0])

    def top_and_bottom(self, pq, k: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{"top": (documents, estimates) descending, "bottom": (documents, estimates) ascending} for one question."""
        columns = self.candidates(pq, k)
        values = self.estimate(pq, columns)[0]
        columns = np.arange(len(self.vectors)) if columns is None else columns
        top, bottom = top_and_bottom(values, min(k, len(values)))
        return {"top": (columns[top], values[top]), "bottom": (columns[bottom], values[bottom])}
