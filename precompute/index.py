"""`python -m precompute index --run DIR`: compressed document gradients for live questions (RUN/index/).

One forward+backward pass over the run's documents (documents.parquet, in score-column order) stores per
document a compressed form of every tracked module's gradient (precompute/index_search.py: rank-R factors of the
whitened gradient by default, or Kronecker projections), memory-mapped in RUN/index/vectors.npy, plus a faiss
index where the method searches with one. Resumable like scoring: one chunk per document range in
RUN/index/chunks/ (atomically written), ranges dealt to torchrun ranks in contiguous blocks, rank 0 assembles.
The manifest records the hashes of the factors, the model and the documents it was built from (`ask` refuses a
stale index) and checks the index against the run's own scores for a sample of its queries.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np
from tqdm.auto import tqdm

from precompute import index_store, rundir
from precompute.errors import UserInputError
from precompute.run_model import RunModel, open_run_model, read_documents, run_queries
from precompute.session import barrier, finish_distributed

log = logging.getLogger("precompute")
METHODS = ("lowrank", "eigen", "gaussian")
DEFAULT_METHOD, DEFAULT_RANK, DEFAULT_DIM, DEFAULT_KEYS_DIM = "lowrank", 4, 8192, 1024
DEFAULT_DTYPE = "float16"
CHECK_QUERIES, CHECK_K = 16, 50
EXIT_AFTER_CHUNKS_ENV = "PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS"   # test hook shared with scoring: die after N chunks


def add_index_flags(parser) -> None:
    parser.add_argument("--run", "--out", dest="out", required=True, help="a complete run directory")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS,
                        help="lowrank (default): rank-R factors of each document's whitened gradient; eigen / "
                             "gaussian: Kronecker projections of --dim numbers (eigenbasis block / seeded random)")
    parser.add_argument("--rank", type=int, default=DEFAULT_RANK, help="lowrank: rank per document and module")
    parser.add_argument("--query-factor-rank", default="8",
                        help="lowrank: rank kept of each question's whitened gradient when scoring documents (full: "
                             "exact; 8 loses nothing measurable on the demo run and is 4x faster than 32)")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM, help="eigen / gaussian: numbers per document")
    parser.add_argument("--dtype", default=DEFAULT_DTYPE, choices=["float16", "float32"], help="stored vectors")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random matrices")
    parser.add_argument("--search", default=None, choices=index_store.SEARCH_KINDS,
                        help="exact: score every document (lowrank default); flat: faiss IndexFlatIP (eigen / "
                             "gaussian default); ivfpq: faiss IndexIVFPQ candidates, for corpora past ~1M documents")
    parser.add_argument("--keys-dim", type=int, default=DEFAULT_KEYS_DIM,
                        help="lowrank with ivfpq: numbers per document in the projected keys faiss searches")
    parser.add_argument("--nlist", type=int, default=None, help="ivfpq: inverted lists (default 4·sqrt(N))")
    parser.add_argument("--pq-m", type=int, default=None, help="ivfpq: sub-quantizers (must divide the dim)")
    parser.add_argument("--nprobe", type=int, default=32, help="ivfpq: lists searched per question")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    parser.add_argument("--chunk-docs", type=int, default=None, help="documents per resumable chunk")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="default: the run's model (as recorded in its manifest)")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete index")


def check_args(args) -> None:
    args.search = args.search or ("exact" if args.method == "lowrank" else "flat")
    text = str(args.query_factor_rank)
    if text != "full" and not (text.isdigit() and int(text) > 0):
        raise UserInputError(f"--query-factor-rank must be 'full' or a positive integer, got {text!r}")
    args.query_factor_rank = None if text == "full" else int(text)
    for name in ("rank", "dim", "keys_dim", "nprobe"):
        if getattr(args, name) < 1:
            raise UserInputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.search == "exact" and args.method != "lowrank":
        raise UserInputError("--search exact is for --method lowrank; eigen / gaussian search with faiss (flat, ivfpq)")
    if args.search == "flat" and args.method == "lowrank":
        raise UserInputError("--method lowrank searches exactly (--search exact) or with ivfpq candidates")


def prepare(run_path: str, overwrite: bool) -> None:
    path = index_store.index_path(run_path, index_store.MANIFEST)
    if os.path.exists(path):
        status = rundir.read_json(path).get("status")
        if status == "complete" and not overwrite:
            raise rundir.RunDirError(f"{run_path}: the run already has a complete index; pass --overwrite to "
                                     "rebuild it")
        if status == "complete":
            os.remove(path)      # never leave a complete-looking index while it is being replaced


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
        rows = [by_length[j] for j in index]
        for array, block in zip(out, blocks):
            values = block.numpy()
            if dtype == "float16" and np.abs(values).max(initial=0) > np.finfo(np.float16).max:
                raise UserInputError("compressed gradients overflow float16; rebuild with --dtype float32")
            array[rows] = values
        bar.update(len(index))
    return out


def index_command(args, progress: bool = True) -> None:
    from engine.distributed import shard
    from precompute.index_search import build_compressors, tensors_sha256

    started = time.perf_counter()
    check_args(args)
    rundir.RunDir(args.out).manifest()                 # "no manifest; is this a run directory?" first
    documents = read_documents(args.out)
    context = open_run_model(args.out, args.model, args.device, documents["id"].astype(str))
    session = context.session
    if session.rank == 0:
        prepare(args.out, args.overwrite)
    compressor, keys = build_compressors(args.method, context.factors, args.rank, args.dim, args.keys_dim, args.seed,
                                         context.settings.damping, args.search)
    compressors = [c for c in (compressor, keys) if c is not None]
    batch_size = args.batch_size or context.settings.batch_size
    per_chunk = args.chunk_docs or batch_size * 64
    store = rundir.ChunkStore(rundir.RunDir(args.out), index_store.CHUNKS)
    key = {**context.hashes, "compressors": [tensors_sha256(c.tensors()) for c in compressors], "dtype": args.dtype,
           "max_length": context.settings.max_length, "batch_size": batch_size, "chunk_docs": per_chunk}
    if session.rank == 0:
        index_store.write_manifest(args.out, {"status": "building", "method": args.method})
        if store.open(key):
            log.info("resuming: %d index chunks already written", len(store.completed()))
    barrier(session)
    ranges = rundir.chunk_ranges(len(documents), per_chunk)
    mine = [ranges[i] for i in shard(len(ranges), session.rank, session.world)]
    todo = [(a, b) for a, b in mine if not store.has(a, b)]
    texts = documents["text"].tolist()
    exit_after = int(os.environ.get(EXIT_AFTER_CHUNKS_ENV, "0"))
    bar = tqdm(total=sum(b - a for a, b in mine), initial=sum(b - a for a, b in mine) - sum(b - a for a, b in todo),
               desc=f"indexing documents (rank {session.rank})", unit="doc", disable=not progress)
    for number, (start, stop) in enumerate(todo, start=1):
        arrays = compress_chunk(context, compressors, texts[start:stop], batch_size, args.dtype, bar)
        store.write(start, stop, **dict(zip(("vectors", "keys"), arrays)))
        if exit_after and number >= exit_after:
            log.warning("%s=%d: exiting abruptly after %d chunks (test hook)", EXIT_AFTER_CHUNKS_ENV, exit_after,
                        number)
            os._exit(75)
    bar.close()
    barrier(session)
    if session.rank == 0:
        finish(args, context, compressor, keys, store, ranges, len(documents), time.perf_counter() - started)


def finish(args, context: RunModel, compressor, keys, store, ranges, n_documents: int, compressed_s: float) -> None:
    """Rank 0: vectors (and keys) from the chunks, the compressors, the faiss index, the check, the manifest."""
    from precompute.index_search import save_compressors, tensors_sha256

    path = args.out
    for name, part, value in ((index_store.VECTORS, "vectors", compressor), (index_store.KEYS, "keys", keys)):
        if value is not None:
            index_store.write_vectors(index_store.index_path(path, name),
                                      ((a, b, store.read(a, b)[part]) for a, b in ranges), n_documents,
                                      value.total_dim, args.dtype)
    save_compressors(path, compressor, keys)
    started = time.perf_counter()
    if args.search != "exact":
        searched = np.load(index_store.index_path(path, index_store.KEYS if keys else index_store.VECTORS),
                           mmap_mode="r")
        search = index_store.build_search(searched, args.search, args.nlist, args.pq_m, args.seed)
        index_store.write_search(index_store.index_path(path, index_store.SEARCH), search)
    manifest = {
        "status": "building", "method": args.method, "seed": args.seed, "rank": args.rank if args.method == "lowrank" else None, "dim": compressor.total_dim, "dtype": args.dtype,
        "bytes_per_document": (compressor.total_dim + (keys.total_dim if keys else 0)) * np.dtype(args.dtype).itemsize,
        "modules": list(compressor.modules), "n_documents": n_documents, **context.hashes,
        "compressor_sha256": tensors_sha256(compressor.tensors()), "max_length": context.settings.max_length,
        "damping": context.settings.damping, "query_rank": context.settings.query_rank,
        "query_factor_rank": args.query_factor_rank if args.method == "lowrank" else None,
        "keys": {"method": keys.method, "dim": keys.total_dim} if keys else None,
        "search": {"kind": args.search, "nprobe": args.nprobe if args.search == "ivfpq" else None},
        "device": context.session.device, "world_size": context.session.world, "created": rundir.utc_now(),
        "timings": {"compress": round(compressed_s, 3), "search_index": round(time.perf_counter() - started, 3)}}
    if args.method != "lowrank":
        manifest["dims"] = {name: list(compressor.dims(name)) for name in compressor.modules}
    index_store.write_manifest(path, manifest)
    manifest["check"] = self_check(path, manifest, context)
    manifest["status"] = "complete"
    index_store.write_manifest(path, manifest)
    store.remove()
    log.info("index written: %s (%d documents, %s, %d bytes per document; on %d of the run's queries: median "
             "Pearson %.3f with scores.npy, top-%d overlap %.2f)", index_store.index_path(path), n_documents,
             args.method, manifest["bytes_per_document"], manifest["check"]["queries"],
             manifest["check"]["pearson_median"], CHECK_K, manifest["check"]["top_overlap_median"])


def self_check(path: str, manifest: dict, context: RunModel) -> dict:
    """The index against the run's own scores.npy on up to CHECK_QUERIES of its queries: Pearson over every
    document, top-k overlap, and (with a faiss search) the recall of the searched top-k."""
    from precompute.index_search import IndexSearch

    scores = np.load(os.path.join(path, "scores.npy"), mmap_mode="r")
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
