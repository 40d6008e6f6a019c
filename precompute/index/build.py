"""`python -m precompute index --run DIR`: compressed document gradients for live questions (RUN/index/).

One forward+backward pass over the run's documents (documents.parquet, in score-column order) stores per
document a compressed form of every tracked module's gradient (precompute/index/search.py: rank-R factors of the
whitened gradient by default, or Kronecker projections), memory-mapped in RUN/index/vectors.npy, plus a faiss
index where the method searches with one. Resumable like scoring: one chunk per document range in
RUN/index/chunks/ (atomically written), ranges dealt to torchrun ranks in contiguous blocks, rank 0 assembles.
The manifest records the hashes of the factors, the model and the documents it was built from (`ask` refuses a
stale index) and checks the index against the run's own scores for a sample of its queries.

`score --index` / `run --index` build the same RUN/index/ within the scoring pass instead (no second pass):
the score chunks carry the vectors, and rank 0 finishes the index here once the score files are written.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from precompute import rundir

from precompute.index import store as index_store
from precompute.rundir import layout
from precompute.rundir.errors import UserInputError
from precompute.index.options import IndexOptions, add_index_options
from precompute.pipeline.run_model import (RunModel, open_run_model, read_documents, resolve_model, run_hashes,
                                  run_queries)
from precompute.pipeline.chunk_loop import fill_chunks
from precompute.pipeline.session import barrier, finish_distributed

log = logging.getLogger("precompute")
CHECK_QUERIES, CHECK_K = 16, 50
CHUNK_PARTS = ("vectors", "keys")                              # chunk arrays of the stored compressor, the keys


def add_index_flags(parser) -> None:
    parser.add_argument("--run", "--out", dest="out", required=True, help="a complete run directory")
    add_index_options(parser)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    parser.add_argument("--chunk-docs", type=int, default=None, help="documents per resumable chunk")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="default: the run's model (as recorded in its manifest)")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete index")


def start_building(run_path: str, overwrite: bool, method: str) -> None:
    """Rank 0: mark the index as building (never leave a complete-looking index while it is being replaced)."""
    path = index_store.index_path(run_path, index_store.MANIFEST)
    if os.path.exists(path):
        status = rundir.read_json(path).get("status")
        if status == "complete" and not overwrite:
            raise rundir.RunDirError(f"{run_path}: the run already has a complete index; pass --overwrite to "
                                     "rebuild it")
        if status == "complete":
            os.remove(path)
    index_store.write_manifest(run_path, {"status": "building", "method": method})


def put_vectors(arrays: list[np.ndarray], rows: list[int], blocks: list, dtype: str) -> None:
    """Each compressor's vectors of a batch ([B, dim] tensors) into its chunk array at `rows`; refuses an overflow
    of float16."""
    for array, block in zip(arrays, blocks):
        values = block.numpy()
        if dtype == "float16" and np.abs(values).max(initial=0) > np.finfo(np.float16).max:
            raise UserInputError("compressed gradients overflow float16; rebuild with --dtype float32")
        array[rows] = values


def compressors_of(options: IndexOptions, factors, damping) -> tuple[object, object, list]:
    """(the stored compressor, the keys projection or None, the list of both that are there)."""
    from precompute.index.search import build_compressors

    compressor, keys = build_compressors(options.method, factors, options.rank, options.dim, options.keys_dim,
                                         options.seed, damping, options.search, options.query_factor_rank)
    return compressor, keys, [c for c in (compressor, keys) if c is not None]


def compress_chunk(context: RunModel, compressors: list, texts: list[str], batch_size: int, dtype: str,
                   bar) -> list[np.ndarray]:
    from engine.batches import make_batches, tokenize_documents
    from engine.lowrank import compress_documents

    documents = tokenize_documents(context.session.tokenizer, texts, context.settings.max_length)
    by_length = sorted(range(len(documents)), key=lambda j: len(documents[j].input_ids))
    batches = list(make_batches([documents[j] for j in by_length], batch_size,
                                context.session.tokenizer.pad_token_id))
    out = [np.zeros((len(documents), c.total_dim), dtype=np.dtype(dtype)) for c in compressors]
    for index, blocks in compress_documents(context.session.model, context.session.tracked, compressors, batches,
                                            progress=False):
        put_vectors(out, [by_length[j] for j in index], blocks, dtype)
        bar.update(len(index))
    return out


def index_command(args, progress: bool = True) -> None:
    from engine.distributed import shard
    from precompute.index.search import tensors_sha256

    started = time.perf_counter()
    options = IndexOptions.from_args(args)
    rundir.RunDir(args.out).manifest()                 # "no manifest; is this a run directory?" first
    documents = read_documents(args.out)
    context = open_run_model(args.out, args.model, args.device, documents["id"].astype(str))
    session = context.session
    if session.rank == 0:
        start_building(args.out, args.overwrite, options.method)
    compressor, keys, compressors = compressors_of(options, context.factors, context.settings.damping)
    batch_size = args.batch_size or context.settings.batch_size
    per_chunk = args.chunk_docs or batch_size * 64
    store = rundir.ChunkStore(rundir.RunDir(args.out), index_store.CHUNKS)
    key = {**context.hashes, "compressors": [tensors_sha256(c.tensors()) for c in compressors],
           "dtype": options.dtype, "max_length": context.settings.max_length, "batch_size": batch_size,
           "chunk_docs": per_chunk}
    if session.rank == 0 and store.open(key):
        log.info("resuming: %d index chunks already written", len(store.completed()))
    barrier(session)
    ranges = rundir.chunk_ranges(len(documents), per_chunk)
    mine = [ranges[i] for i in shard(len(ranges), session.rank, session.world)]
    texts = documents["text"].tolist()

    def compute(start: int, stop: int, bar) -> dict:
        arrays = compress_chunk(context, compressors, texts[start:stop], batch_size, options.dtype, bar)
        return dict(zip(CHUNK_PARTS, arrays))

    fill_chunks(store, mine, compute, f"indexing documents (rank {session.rank})", progress)
    barrier(session)
    if session.rank == 0:
        finish(args.out, options, context, compressor, keys, store, ranges,
               {"compress": round(time.perf_counter() - started, 3)})
        store.remove()


def finish(path: str, options: IndexOptions, context: RunModel, compressor, keys, store, ranges,
           timings: dict) -> None:
    """Rank 0: vectors (and keys) from the chunks' CHUNK_PARTS, the compressors, the faiss index, the check, the
    manifest (`index` and `score --index` alike)."""
    from precompute.index.search import save_compressors, tensors_sha256

    n_documents = ranges[-1][1] if ranges else 0
    for name, part, value in ((index_store.VECTORS, "vectors", compressor), (index_store.KEYS, "keys", keys)):
        if value is not None:
            index_store.write_vectors(index_store.index_path(path, name),
                                      ((a, b, store.read(a, b)[part]) for a, b in ranges), n_documents,
                                      value.total_dim, options.dtype)
    save_compressors(path, compressor, keys)
    started = time.perf_counter()
    if options.search != "exact":
        searched = np.load(index_store.index_path(path, index_store.KEYS if keys else index_store.VECTORS),
                           mmap_mode="r")
        search = index_store.build_search(searched, options.search, options.nlist, options.pq_m, options.seed)
        index_store.write_search(index_store.index_path(path, index_store.SEARCH), search)
    lowrank = options.method == "lowrank"
    manifest = {
        "status": "building", "method": options.method, "seed": options.seed, "rank": options.rank if lowrank else None,
        "dim": compressor.total_dim, "dtype": options.dtype,
        "bytes_per_document": ((compressor.total_dim + (keys.total_dim if keys else 0))
                               * np.dtype(options.dtype).itemsize),
        "modules": list(compressor.modules), "n_documents": n_documents, **context.hashes,
        "compressor_sha256": tensors_sha256(compressor.tensors()), "max_length": context.settings.max_length,
        "damping": context.settings.damping, "query_rank": context.settings.query_rank,
        "query_factor_rank": options.query_factor_rank if lowrank else None,
        "keys": {"method": keys.method, "dim": keys.total_dim} if keys else None,
        "search": {"kind": options.search, "nprobe": options.nprobe if options.search == "ivfpq" else None},
        "device": context.session.device, "world_size": context.session.world, "created": rundir.utc_now(),
        "timings": {**timings, "search_index": round(time.perf_counter() - started, 3)}}
    if not lowrank:
        manifest["dims"] = {name: list(compressor.dims(name)) for name in compressor.modules}
    index_store.write_manifest(path, manifest)
    manifest["check"] = self_check(path, manifest, context)
    manifest["status"] = "complete"
    index_store.write_manifest(path, manifest)
    log.info("index written: %s (%d documents, %s, %d bytes per document; on %d of the run's queries: median "
             "Pearson %.3f with scores.npy, top-%d overlap %.2f)", index_store.index_path(path), n_documents,
             options.method, manifest["bytes_per_document"], manifest["check"]["queries"],
             manifest["check"]["pearson_median"], CHECK_K, manifest["check"]["top_overlap_median"])


def finish_from_scoring(run_path: str, settings, session, factors, document_ids, built: tuple, store, ranges,
                        seconds: float) -> None:
    """Rank 0, once `score --index` wrote the score files: RUN/index/ from the vectors in its score chunks (the
    chunks stay for the token-score stage, which removes them)."""
    context = RunModel(run_path, rundir.RunDir(run_path).manifest(), settings, factors, session,
                       run_hashes(run_path, resolve_model(settings.model), document_ids))
    compressor, keys, _ = built
    finish(run_path, settings.index, context, compressor, keys, store, ranges,
           {"score_and_compress": round(seconds, 3)})


def self_check(path: str, manifest: dict, context: RunModel) -> dict:
    """The index against the run's own scores.npy on up to CHECK_QUERIES of its queries: Pearson over every
    document, top-k overlap, and (with a faiss search) the recall of the searched top-k."""
    from precompute.index.search import IndexSearch

    scores = np.load(os.path.join(path, layout.SCORES), mmap_mode="r")
    rows = sorted(set(np.linspace(0, scores.shape[0] - 1, min(CHECK_QUERIES, scores.shape[0])).astype(int).tolist()))
    pq = run_queries(context, rows)
    search = IndexSearch(path, manifest)
    estimate = search.estimate(pq)
    k = min(CHECK_K, estimate.shape[1])
    pearson, overlap, recall = [], [], []
    for i, row in enumerate(rows):
        exact = np.asarray(scores[row])
        pearson.append(float(np.corrcoef(estimate[i], exact)[0, 1]))
        best = set(np.argsort(-estimate[i])[:k].tolist())
        overlap.append(len(best & set(np.argsort(-exact)[:k].tolist())) / k)
        if search.search is not None:
            recall.append(len(best & set(search.top_and_bottom(pq.select([i]), k)["top"][0].tolist())) / k)
    return {"queries": len(rows), "pearson_median": float(np.median(pearson)), "top_k": k,
            "top_overlap_median": float(np.median(overlap)),
            "search_recall_median": float(np.median(recall)) if recall else None}


def run_index(args, command_line: str, progress: bool) -> None:
    """The CLI entry (precompute/__main__.py's command table; it holds the run's writer lock)."""
    try:
        index_command(args, progress)
    finally:
        finish_distributed()
