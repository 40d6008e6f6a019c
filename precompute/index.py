"""`python -m precompute index --run DIR`: compressed document gradients for live questions (RUN/index/).

One forward+backward pass over the run's documents (documents.parquet, in score-column order) stores per
document the Kronecker-projected gradient of every tracked module (engine.projection), memory-mapped in
RUN/index/vectors.npy, plus a faiss inner-product index over those vectors. Resumable like scoring: one chunk
per document range in RUN/index/chunks/ (atomically written), ranges dealt to torchrun ranks in contiguous
blocks, rank 0 assembles. The index manifest records the hashes of the factors, the model and the documents it
was built from, so `ask` can refuse a stale index. Layout: precompute/index_store.py.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute import index_store, rundir
from precompute.errors import UserInputError
from precompute.rundir import layout
from precompute.session import Session, barrier, finish_distributed, open_session
from precompute.settings import Settings

log = logging.getLogger("precompute")
DEFAULT_METHOD = "eigen"
DEFAULT_DIM = 8192
DEFAULT_DTYPE = "float16"
RECALL_K = 50
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".json", ".model", ".txt")
EXIT_AFTER_CHUNKS_ENV = "PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS"   # test hook shared with scoring: die after N chunks
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_index_flags(parser) -> None:
    parser.add_argument("--run", "--out", dest="out", required=True, help="a complete run directory")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM, help="numbers stored per document (all modules)")
    parser.add_argument("--method", default=DEFAULT_METHOD,
                        help="eigen (default): top directions of the factors' eigenbasis; gaussian: seeded random "
                             "matrices (unbiased)")
    parser.add_argument("--dtype", default=DEFAULT_DTYPE, choices=["float16", "float32"], help="stored vectors")
    parser.add_argument("--seed", type=int, default=0, help="seed of the gaussian projection")
    parser.add_argument("--search", default="flat", choices=index_store.SEARCH_KINDS,
                        help="flat: exact faiss IndexFlatIP; ivfpq: IndexIVFPQ for corpora past ~1M documents")
    parser.add_argument("--nlist", type=int, default=None, help="ivfpq: inverted lists (default 4·sqrt(N))")
    parser.add_argument("--pq-m", type=int, default=None, help="ivfpq: sub-quantizers (must divide the dim)")
    parser.add_argument("--nprobe", type=int, default=32, help="ivfpq: lists searched per question")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    parser.add_argument("--chunk-docs", type=int, default=None, help="documents per resumable chunk")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="default: the run's model (as recorded in its manifest)")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete index")


# ---------------------------------------------------------------- the run's model, factors and documents

def resolve_model(spec: str) -> str:
    """The run's model as recorded, or relative to the repository when the recorded path is relative."""
    if os.path.exists(spec) or os.path.isabs(spec):
        return spec
    beside = os.path.join(ROOT, spec)
    return beside if os.path.exists(beside) else spec


def model_sha256(spec: str) -> str:
    """Hash of a model's files (weights, config, tokenizer): a directory, a .gguf file or the 'smollm2' alias."""
    if spec == "smollm2":
        from engine.model import smollm2_gguf_path
        spec = smollm2_gguf_path()
    if os.path.isfile(spec):
        return rundir.sha256_of_file(spec)
    if not os.path.isdir(spec):
        raise UserInputError(f"model not found: {spec}")
    digest = hashlib.sha256()
    for name in sorted(os.listdir(spec)):
        if name.endswith(MODEL_FILE_SUFFIXES) and os.path.isfile(os.path.join(spec, name)):
            digest.update(name.encode() + b"\0" + rundir.sha256_of_file(os.path.join(spec, name)).encode())
    return digest.hexdigest()


@dataclass
class RunModel:
    """What a command needs to compute gradients for a complete run: its settings, factors and model."""
    path: str
    manifest: dict
    settings: Settings
    factors: object
    session: Session
    hashes: dict          # factors_sha256, model_sha256, documents_sha256


def open_run_model(run_path: str, model: str | None = None, device: str = "auto",
                   documents_ids=None) -> RunModel:
    from engine.factors import Factors

    run = rundir.RunDir(run_path)
    manifest = run.manifest()
    if manifest.get("status") != layout.COMPLETE:
        raise rundir.RunDirError(f"{run_path}: the run is not complete (status {manifest.get('status')!r}); "
                                 "finish it before indexing or asking")
    if manifest.get("synthetic") or manifest.get("imported"):
        raise rundir.RunDirError(f"{run_path}: a synthetic or imported run has no model to compute gradients with")
    tensors = run.file(layout.FACTORS_DIR, layout.FACTOR_TENSORS)
    if not os.path.exists(tensors):
        raise rundir.RunDirError(f"{run_path}: the run has no factors ({tensors})")
    spec = resolve_model(model or manifest.get("model", ""))
    settings = Settings(model=spec, out=run_path, device=device, dtype=manifest.get("dtype", "float32"),
                        max_length=int(manifest.get("max_length", 256)),
                        batch_size=int(manifest.get("batch_size", 8)),
                        damping=manifest.get("damping", "auto"),
                        query_rank=manifest.get("query_rank", 32)).checked()
    hashes = {"factors_sha256": rundir.sha256_of_file(tensors), "model_sha256": model_sha256(spec)}
    if documents_ids is not None:
        hashes["documents_sha256"] = index_store.documents_sha256(documents_ids)
    factors = Factors.load(run.file(layout.FACTORS_DIR))
    session = open_session(settings, modules=factors.modules)
    return RunModel(run_path, manifest, settings, factors, session, hashes)


def read_documents(run_path: str) -> pd.DataFrame:
    """id, source, text of the run's documents in score-column order."""
    path = os.path.join(run_path, layout.DOCUMENTS)
    if not os.path.exists(path):
        raise rundir.RunDirError(f"{run_path}: no {layout.DOCUMENTS}; is this a complete run directory?")
    return pd.read_parquet(path, columns=["id", "source", "text"])


def run_query_vectors(context: RunModel, projection) -> np.ndarray:
    """[Q, dim] the run's own queries, preconditioned as in scoring and projected like the documents."""
    from engine.batches import tokenize_queries
    from engine.precondition import QueryArguments, precondition, query_gradients

    records = rundir.read_jsonl(os.path.join(context.path, layout.QUERIES))
    tokens = tokenize_queries(context.session.tokenizer, [r["prompt"] for r in records],
                              [r["completion"] for r in records], context.settings.max_length)
    grads, _ = query_gradients(context.session.model, context.session.tracked, tokens, context.settings.batch_size)
    pq = precondition(grads, context.factors, QueryArguments(context.settings.damping, context.settings.query_rank))
    return projection.query_vectors(pq).numpy()


# ---------------------------------------------------------------- the command

def prepare(run_path: str, overwrite: bool) -> None:
    path = index_store.index_path(run_path, index_store.MANIFEST)
    if os.path.exists(path):
        status = rundir.read_json(path).get("status")
        if status == "complete" and not overwrite:
            raise rundir.RunDirError(f"{run_path}: the run already has a complete index; pass --overwrite to "
                                     "rebuild it")
        if status == "complete":
            os.remove(path)      # never leave a complete-looking index while it is being replaced


def project_chunk(context: RunModel, projection, texts: list[str], batch_size: int, dtype: str, bar) -> np.ndarray:
    from engine.batches import make_batches, tokenize_documents
    from engine.projection import project_documents

    documents = tokenize_documents(context.session.tokenizer, texts, context.settings.max_length)
    by_length = sorted(range(len(documents)), key=lambda j: len(documents[j].input_ids))
    batches = list(make_batches([documents[j] for j in by_length], batch_size,
                                context.session.tokenizer.pad_token_id))
    out = np.zeros((len(documents), projection.total_dim), dtype=np.dtype(dtype))
    for index, vectors in project_documents(context.session.model, context.session.tracked, projection, batches,
                                            progress=False):
        out[[by_length[j] for j in index]] = vectors.numpy()
        bar.update(len(index))
    return out


def index_command(args, progress: bool = True) -> None:
    from engine.distributed import shard
    from engine.projection import build_projection

    started = time.perf_counter()
    if args.dim < 1:
        raise UserInputError(f"--dim must be a positive integer, got {args.dim}")
    documents = read_documents(args.out)
    context = open_run_model(args.out, args.model, args.device, documents["id"].astype(str))
    session = context.session
    if session.rank == 0:
        prepare(args.out, args.overwrite)
    projection = build_projection(args.method, context.factors, args.dim, args.seed, context.settings.damping)
    batch_size = args.batch_size or context.settings.batch_size
    per_chunk = args.chunk_docs or batch_size * 64
    store = rundir.ChunkStore(rundir.RunDir(args.out), index_store.CHUNKS)
    key = {**context.hashes, "projection_sha256": projection.sha256(), "dtype": args.dtype,
           "max_length": context.settings.max_length, "batch_size": batch_size, "chunk_docs": per_chunk}
    if session.rank == 0:
        index_store.write_manifest(args.out, {"status": "building", "method": args.method, "dim": args.dim})
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
        store.write(start, stop, vectors=project_chunk(context, projection, texts[start:stop], batch_size,
                                                       args.dtype, bar))
        if exit_after and number >= exit_after:
            log.warning("%s=%d: exiting abruptly after %d chunks (test hook)", EXIT_AFTER_CHUNKS_ENV, exit_after,
                        number)
            os._exit(75)
    bar.close()
    barrier(session)
    if session.rank == 0:
        projected = time.perf_counter() - started
        finish(args, context, projection, store, ranges, len(documents), projected)


def finish(args, context: RunModel, projection, store, ranges, n_documents: int, projected: float) -> None:
    """Rank 0: vectors.npy from the chunks, the run's query vectors, the faiss index, then the manifest."""
    from safetensors.torch import save

    path = args.out
    vectors_path = index_store.index_path(path, index_store.VECTORS)
    index_store.write_vectors(vectors_path, ((a, b, store.read(a, b)["vectors"]) for a, b in ranges),
                              n_documents, projection.total_dim, args.dtype)
    with rundir.atomic_path(index_store.index_path(path, index_store.PROJECTION)) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(save(projection.tensors()))
    queries = run_query_vectors(context, projection)
    rundir.write_npy(index_store.index_path(path, index_store.QUERY_VECTORS), queries)
    started = time.perf_counter()
    vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    search = index_store.build_search(vectors, args.search, args.nlist, args.pq_m, args.seed)
    if args.search == "ivfpq":
        search.nprobe = args.nprobe
    recall = index_store.recall_at_k(search, vectors, queries, RECALL_K) if args.search != "flat" else 1.0
    index_store.write_search(index_store.index_path(path, index_store.SEARCH), search)
    searched = time.perf_counter() - started
    dims = {name: list(projection.dims(name)) for name in projection.modules}
    index_store.write_manifest(path, {
        "status": "complete", "method": projection.method, "seed": projection.seed if args.method == "gaussian"
        else None, "dim": projection.total_dim, "requested_dim": args.dim, "dtype": args.dtype,
        "bytes_per_document": projection.total_dim * np.dtype(args.dtype).itemsize, "modules": projection.modules,
        "dims": dims, "n_documents": n_documents, "n_queries": int(len(queries)), **context.hashes,
        "projection_sha256": projection.sha256(), "max_length": context.settings.max_length,
        "damping": context.settings.damping, "query_rank": context.settings.query_rank,
        "search": {"kind": args.search, "nlist": getattr(search, "nlist", None), "nprobe": args.nprobe
                   if args.search == "ivfpq" else None, f"recall_at_{RECALL_K}": recall},
        "device": context.session.device, "world_size": context.session.world, "created": rundir.utc_now(),
        "timings": {"project": round(projected, 3), "search_index": round(searched, 3)}})
    store.remove()
    log.info("index written: %s (%d documents x %d numbers, %s, %d bytes per document)",
             index_store.index_path(path), n_documents, projection.total_dim, args.dtype,
             projection.total_dim * np.dtype(args.dtype).itemsize)


def run_index(args, command_line: str, progress: bool) -> None:
    """The CLI entry (precompute/__main__.py's command table)."""
    try:
        index_command(args, progress)
    finally:
        finish_distributed()
