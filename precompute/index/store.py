"""RUN/index/: the compressed document gradients behind `ask` — file names, manifest, checks and faiss search.

No torch here. Layout (docs/ask.md):
- manifest.json            method, rank or dims per module, seed, dtype, bytes per document, hashes (factors,
                           model, documents, compressor), search kind, accuracy check on the run's own queries,
                           timings, status ("building" / "complete")
- vectors.npy              [D, dim] float16/float32, row d = document d (documents.parquet order), memory-mapped
- compressor.safetensors   the compression's matrices (engine.lowrank or engine.projection)
- keys.npy, keys.safetensors   lowrank with ivfpq only: small projected keys that faiss searches for candidates
- search.faiss             faiss inner-product index (IndexFlatIP or IndexIVFPQ) over the vectors or the keys
- chunks/                  resumable per-range vectors while building; removed when complete
"""
from __future__ import annotations

import logging
import os

import numpy as np

from precompute.rundir.errors import UserInputError
from precompute.rundir import AtomicMemmap, atomic_path, read_json, sha256_of_strings, write_json
from precompute.rundir import layout

# the index's file names are the run directory's (precompute.rundir.layout); short names for this package
INDEX_DIR, MANIFEST, VECTORS, KEYS = layout.INDEX_DIR, layout.INDEX_MANIFEST, layout.INDEX_VECTORS, layout.INDEX_KEYS
COMPRESSOR, KEYS_PROJECTION, SEARCH = layout.INDEX_COMPRESSOR, layout.INDEX_KEYS_PROJECTION, layout.INDEX_SEARCH
CHUNKS = os.path.join(INDEX_DIR, layout.INDEX_CHUNKS)
FORMAT_VERSION = 1
SEARCH_KINDS = ("exact", "flat", "ivfpq")   # exact: every document scored from its vectors (lowrank default)
ADD_BLOCK = 1 << 14        # documents per block when filling the faiss index
logging.getLogger("faiss.loader").setLevel(logging.WARNING)   # which CPU build it picked is noise in our logs


class IndexUnavailable(UserInputError):
    """A missing, unfinished or stale index (one line, exit code 2)."""


def index_path(run_path: str, *names: str) -> str:
    return os.path.join(run_path, INDEX_DIR, *names)


def documents_sha256(ids) -> str:
    """Fingerprint of the run's document ids in column order (the rows of vectors.npy)."""
    return sha256_of_strings(ids)


def read_manifest(run_path: str) -> dict:
    """The complete index's manifest; IndexUnavailable naming what to run when there is none or it is unfinished."""
    path = index_path(run_path, MANIFEST)
    if not os.path.exists(path):
        raise IndexUnavailable(f"{run_path}: the run has no index; build it with "
                          f"`python -m precompute index --run {run_path}`")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as error:
        raise IndexUnavailable(f"{path}: unreadable index manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("status") != "complete":
        status = manifest.get("status") if isinstance(manifest, dict) else None
        raise IndexUnavailable(f"{run_path}: the index is not complete (status {status!r}); run "
                          f"`python -m precompute index --run {run_path}` again to finish it")
    return manifest


def check_fresh(run_path: str, manifest: dict, current: dict) -> None:
    """Raise IndexUnavailable when a hash the index was built with (factors, model, documents) differs now."""
    for what, label in (("factors_sha256", "the run's factors"), ("model_sha256", "the model"),
                        ("documents_sha256", "the run's documents")):
        if what in current and manifest.get(what) != current[what]:
            raise IndexUnavailable(f"{run_path}: the index is stale: {label} changed since it was built "
                              f"(sha256 {str(manifest.get(what))[:12]}… then, {current[what][:12]}… now); rebuild "
                              f"it with `python -m precompute index --run {run_path} --overwrite`")


# ---------------------------------------------------------------- vectors and search

def open_vectors(run_path: str, manifest: dict, name: str = VECTORS, dim: int | None = None) -> np.ndarray:
    vectors = np.load(index_path(run_path, name), mmap_mode="r", allow_pickle=False)
    expected = (manifest["n_documents"], dim or manifest["dim"])
    if vectors.shape != expected:
        raise IndexUnavailable(f"{index_path(run_path, name)}: shape {vectors.shape}, the index manifest says "
                          f"{expected}; rebuild with --overwrite")
    return vectors


def write_vectors(path: str, blocks, n_documents: int, dim: int, dtype: str) -> None:
    """vectors.npy from (start, stop, array) blocks, filled in place and moved into place at the end."""
    memmap = AtomicMemmap(path, (n_documents, dim), dtype=np.dtype(dtype))
    try:
        for start, stop, array in blocks:
            memmap.array[start:stop] = array
    except BaseException:
        memmap.abort()
        raise
    memmap.commit()


def build_search(vectors: np.ndarray, kind: str = "flat", nlist: int | None = None, pq_m: int | None = None,
                 seed: int = 0):
    """A faiss inner-product index over the rows of `vectors` (float16 rows are widened block by block)."""
    import faiss

    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivfpq":
        nlist = nlist or max(1, min(4096, int(4 * np.sqrt(n)), n // 39))        # faiss wants >= 39 rows per list
        pq_m = pq_m or largest_divisor_at_most(dim, 64)
        if dim % pq_m:
            raise UserInputError(f"--pq-m {pq_m} must divide the index dimension {dim}")
        bits = int(min(8, max(1, np.log2(max(2, n // 4)))))       # PQ codebooks need >= 2^bits training rows
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, pq_m, bits, faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max(64 * nlist, 10_000)), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    else:
        raise UserInputError(f"unknown search index {kind!r} (choose from {', '.join(SEARCH_KINDS)})")
    for start in range(0, n, ADD_BLOCK):
        index.add(np.ascontiguousarray(vectors[start:start + ADD_BLOCK], dtype=np.float32))
    return index


def largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def write_search(path: str, index) -> None:
    import faiss

    with atomic_path(path) as temporary:
        faiss.write_index(index, temporary)


def read_search(path: str, nprobe: int | None = None):
    import faiss

    try:
        index = faiss.read_index(path, faiss.IO_FLAG_MMAP)     # flat vectors stay on disk (shared page cache)
    except RuntimeError:
        index = faiss.read_index(path)
    if nprobe is not None and hasattr(index, "nprobe"):
        index.nprobe = nprobe
    return index


def write_manifest(run_path: str, manifest: dict) -> None:
    write_json(index_path(run_path, MANIFEST), {"format_version": FORMAT_VERSION, **manifest})
