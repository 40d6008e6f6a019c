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

from precompute import index_store
from precompute.analysis.ranking import top_and_bottom

SCORE_BLOCK = 2048          # documents per block when scoring every document
CANDIDATES = 20             # ivfpq: candidates per side = CANDIDATES · k, scored exactly from the factors


def tensors_sha256(flat: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(flat):
        digest.update(name.encode() + b"\0")
        digest.update(flat[name].detach().cpu().double().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_compressors(method: str, factors, rank: int, dim: int, keys_dim: int, seed: int, damping, search: str):
    """(the compressor whose vectors are stored, the keys projection for faiss or None)."""
    from engine.lowrank import lowrank_whitened
    from engine.projection import build_projection

    if method != "lowrank":
        return build_projection(method, factors, dim, seed, damping), None
    keys = None
    if search == "ivfpq":
        keys_method = "eigen" if factors.strategy in ("kfac", "ekfac") else "gaussian"
        keys = build_projection(keys_method, factors, keys_dim, seed, damping)
    return lowrank_whitened(factors, rank, seed), keys


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
        compressor = LowRankWhitened.from_tensors(manifest["modules"], manifest["rank"], manifest["seed"], flat)
    else:
        compressor = Projection.from_tensors(manifest["method"], manifest["seed"], manifest["modules"], flat)
    keys = None
    if manifest.get("keys"):
        keys = Projection.from_tensors(manifest["keys"]["method"], manifest["seed"], manifest["modules"],
                                       load_file(index_store.index_path(run_path, index_store.KEYS_PROJECTION)))
    return compressor, keys


class IndexSearch:
    """A built index opened for questions: compressors, memory-mapped vectors (and keys), faiss index."""

    def __init__(self, run_path: str, manifest: dict, nprobe: int | None = None):
        self.manifest = manifest
        self.compressor, self.keys = load_compressors(run_path, manifest)
        self.vectors = index_store.open_vectors(run_path, manifest)
        self.search = None
        if manifest["search"]["kind"] != "exact":
            self.search = index_store.read_search(index_store.index_path(run_path, index_store.SEARCH),
                                                  nprobe or manifest["search"].get("nprobe"))

    @property
    def lowrank(self) -> bool:
        return self.manifest["method"] == "lowrank"

    def estimate(self, pq, columns: np.ndarray | None = None) -> np.ndarray:
        """[Q, N] estimated scores of every document (or those at `columns`), from the stored vectors."""
        import torch

        from engine.lowrank import score_block

        columns = np.arange(len(self.vectors)) if columns is None else np.asarray(columns)
        if self.lowrank:
            queries = self.compressor.query_factors(pq)
        else:
            queries = self.compressor.query_vectors(pq)
        out = np.zeros((pq.n_queries, len(columns)), dtype=np.float32)
        for start in range(0, len(columns), SCORE_BLOCK):
            rows = columns[start:start + SCORE_BLOCK]
            block = torch.from_numpy(np.asarray(self.vectors[np.sort(rows)], dtype=np.float32))
            order = np.argsort(np.argsort(rows))                        # back from sorted rows to `rows`
            if self.lowrank:
                values = score_block(self.compressor, block, queries)
            else:
                values = queries @ block.t()
            out[:, start:start + len(rows)] = values.numpy()[:, order]
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
