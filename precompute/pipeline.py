"""fit → score → token scores → analyze, on one process or under torchrun.

Resumable: scoring writes one chunk per document range into RUN/chunks/ (atomically); the same command run
again re-uses the factors and every finished chunk, and ends with the same scores. Streaming: a chunk's
documents are tokenized only when that chunk is scored; the chunk keeps their token counts and truncation
flags, which rank 0 assembles for documents.parquet, the manifest counts and the one truncation warning. Distributed: chunks are
dealt to ranks in contiguous blocks, factor statistics are all-reduced by the engine, rank 0 writes the files.
A run directory says `"status": "complete"` only once every file is written.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from precompute import analysis, outputs, rundir
from precompute.errors import UserInputError
from precompute.inputs import Corpus, Queries, read_corpus, read_queries
from precompute.settings import Settings

log = logging.getLogger("precompute")
EXIT_AFTER_CHUNKS_ENV = "PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS"   # test hook: die (like a kill) after N chunks


@dataclass
class Session:
    model: object
    tokenizer: object
    tracked: dict
    device: str
    rank: int
    world: int


def open_session(settings: Settings, modules: list[str] | None = None) -> Session:
    from engine.distributed import init_from_env, rank_and_world
    from engine.model import find_tracked_modules, load_model, resolve_device

    init_from_env()
    rank, world = rank_and_world()
    device = resolve_device(settings.device)
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    log.info("loading model %s on %s (%s)", settings.model, device, settings.dtype)
    model, tokenizer = load_model(settings.model, device=device, dtype=settings.dtype)
    if modules is None:
        tracked = find_tracked_modules(model, settings.modules)
    else:
        named = dict(model.named_modules())
        missing = [name for name in modules if name not in named]
        if missing:
            raise UserInputError(f"factors name module {missing[0]!r} that model {settings.model} does not have")
        tracked = {name: named[name] for name in modules}
    log.info("tracking %d modules: %s ... %s", len(tracked), next(iter(tracked)), list(tracked)[-1])
    return Session(model, tokenizer, tracked, device, rank, world)


def barrier(session: Session) -> None:
    from engine.distributed import is_distributed
    if is_distributed():
        import torch.distributed as dist
        dist.barrier()


def tokenize_chunk(session: Session, corpus: Corpus, settings: Settings, start: int, stop: int) -> list:
    """Documents start..stop-1, tokenized when their chunk is scored (never the whole corpus at once)."""
    from engine.batches import tokenize_documents

    return tokenize_documents(session.tokenizer, corpus.texts[start:stop], settings.max_length)


def warn_truncated(corpus: Corpus, truncated: np.ndarray, max_length: int) -> None:
    flagged = np.flatnonzero(truncated)
    if len(flagged):
        first = int(flagged[0])
        log.warning("%d documents longer than --max-length %d tokens were truncated (first: %s, id %r)",
                    len(flagged), max_length, corpus.where(first), corpus.ids[first])


def tokenize_queries(session: Session, queries: Queries, settings: Settings) -> list:
    from engine.batches import tokenize_queries as engine_tokenize
    from engine.errors import EngineInputError

    tokenized = []
    for record, line in zip(queries.records, queries.lines):
        try:
            tokenized += engine_tokenize(session.tokenizer, [record["prompt"]], [record["completion"]],
                                         settings.max_length)
        except EngineInputError as error:
            message = str(error).removeprefix("query 0").lstrip(": ")
            raise UserInputError(f"{queries.path}: line {line}: field 'completion': {message}") from None
    return tokenized


# ---------------------------------------------------------------- stages

def fit_stage(run: rundir.RunDir, settings: Settings, corpus: Corpus, session: Session, progress: bool):
    from engine.batches import make_batches, tokenize_documents
    from engine.distributed import shard
    from engine.factors import FactorArguments, fit_factors

    started = time.perf_counter()
    n_fit = min(settings.factor_docs or len(corpus), len(corpus))
    chosen = np.sort(np.random.default_rng(settings.seed).choice(len(corpus), size=n_fit, replace=False))
    mine = chosen[list(shard(n_fit, session.rank, session.world))]
    log.info("fitting %s factors (%s Fisher) on %d documents", settings.strategy, settings.fisher, n_fit)
    docs = tokenize_documents(session.tokenizer, [corpus.texts[i] for i in mine], settings.max_length)
    docs.sort(key=lambda item: len(item.input_ids))       # batches of similar length: less padding
    batches = list(make_batches(docs, settings.batch_size, session.tokenizer.pad_token_id))
    factors = fit_factors(session.model, session.tracked, batches,
                          FactorArguments(settings.strategy, settings.fisher, settings.seed), progress=progress)
    if session.rank == 0:
        factors.save(run.file(rundir.FACTORS_DIR))
        run.update_manifest(status="fitted", fit_key=settings.fit_key(), layers=factors.modules,
                            factor_docs=n_fit, device=session.device)
        run.record_timing("fit", time.perf_counter() - started)
    barrier(session)
    return factors


def score_stage(run: rundir.RunDir, settings: Settings, corpus: Corpus, queries: Queries, session: Session,
                factors, progress: bool) -> None:
    from engine.batches import make_batches
    from engine.distributed import shard
    from engine.precondition import QueryArguments, precondition, query_gradients
    from engine.scoring import score_documents

    started = time.perf_counter()
    if session.rank == 0:
        run.set_status("scoring")
    query_tokens = tokenize_queries(session, queries, settings)
    log.info("query gradients for %d queries; preconditioning (damping %s, rank %s)", len(queries),
             settings.damping, settings.query_rank or "full")
    grads, nats = query_gradients(session.model, session.tracked, query_tokens, settings.batch_size)
    pq = precondition(grads, factors, QueryArguments(damping=settings.damping, rank=settings.query_rank))
    del grads

    store = rundir.ChunkStore(run)
    key = settings.score_key(settings.fit_key() | {
        "factors_sha256": rundir.sha256_of_file(run.file(rundir.FACTORS_DIR, "factors.safetensors"))})
    if session.rank == 0:
        kept = store.open(key)
        if kept:
            log.info("resuming: %d score chunks already written", kept)
    barrier(session)
    ranges = outputs.chunk_ranges(len(corpus), settings.documents_per_chunk)
    mine = [ranges[i] for i in shard(len(ranges), session.rank, session.world)]
    todo = [(start, stop) for start, stop in mine if not store.has(start, stop)]
    exit_after = int(os.environ.get(EXIT_AFTER_CHUNKS_ENV, "0"))
    bar = tqdm(total=sum(stop - start for start, stop in mine), desc=f"scoring documents (rank {session.rank})",
               unit="doc", disable=not progress, initial=sum(b - a for a, b in mine) - sum(b - a for a, b in todo))
    for number, (start, stop) in enumerate(todo, start=1):
        n, n_layers = stop - start, len(pq.modules)
        documents = tokenize_chunk(session, corpus, settings, start, stop)
        chunk = {"scores": np.zeros((len(queries), n), np.float32),
                 "layer_scores": np.zeros((len(queries), n_layers, n), np.float32),
                 "grad_norms": np.zeros(n, np.float32),
                 "n_tokens": np.asarray([len(item.input_ids) for item in documents], dtype=np.int64),
                 "truncated": np.asarray([item.truncated for item in documents], dtype=bool)}
        by_length = sorted(range(n), key=lambda j: len(documents[j].input_ids))   # less padding
        batches = list(make_batches([documents[j] for j in by_length], settings.batch_size,
                                    session.tokenizer.pad_token_id))
        del documents
        for result in score_documents(session.model, session.tracked, pq, batches, progress=False):
            columns = [by_length[j] for j in result.index]
            chunk["scores"][:, columns] = result.scores.numpy()
            chunk["layer_scores"][:, :, columns] = result.layer_scores.numpy()
            chunk["grad_norms"][columns] = result.grad_norms.numpy()
            bar.update(len(columns))
        store.write(start, stop, **chunk)
        if exit_after and number >= exit_after:
            log.warning("%s=%d: exiting abruptly after %d chunks (test hook)", EXIT_AFTER_CHUNKS_ENV, exit_after,
                        number)
            os._exit(75)
    bar.close()
    barrier(session)
    if session.rank != 0:
        return
    log.info("writing score files from %d chunks", len(ranges))
    lengths = outputs.write_score_files(run, store, ranges, len(queries), len(pq.modules), len(corpus))
    warn_truncated(corpus, lengths.truncated, settings.max_length)
    outputs.write_documents(run, corpus, lengths)
    outputs.write_queries(run, queries, query_tokens, nats.numpy())
    rundir.write_json(run.file(rundir.LAYERS), list(pq.modules))
    factors.save(run.file(rundir.FACTORS_DIR))         # now with the damping used per module
    run.update_manifest(device=session.device, versions=rundir.package_versions(), counts={
        "queries": len(queries), "documents": len(corpus), "layers": len(pq.modules),
        "document_tokens": int(lengths.n_tokens.sum()), "truncated_documents": int(lengths.truncated.sum())})
    run.record_timing("score", time.perf_counter() - started)

    started = time.perf_counter()
    outputs.write_token_scores(run, session, pq, corpus, queries, settings.max_length, settings.token_topk,
                               progress)
    run.record_timing("token_scores", time.perf_counter() - started)
    store.remove()


def analyze_stage(run: rundir.RunDir, top_k: int, progress: bool) -> None:
    started = time.perf_counter()
    run.set_status("analyzing")
    log.info("analysing %s", run.path)
    tables = analysis.analyze_run(run, top_k=top_k, progress=progress)
    run.record_timing("analyze", time.perf_counter() - started)
    missing = run.missing_files(with_factors=not run.manifest().get("synthetic", False))
    if missing:
        raise UserInputError(f"{run.path}: cannot mark complete, missing {', '.join(missing)}")
    run.set_status("complete")
    for note in tables["findings"]["notes"]:
        log.info("finding: %s", note)


# ---------------------------------------------------------------- commands

def begin(settings: Settings, command_line: str, fresh_fit: bool) -> rundir.RunDir:
    """Check the run directory and write the manifest's settings (rank 0). A complete run is only replaced
    with --overwrite; an incomplete one is continued."""
    from engine.distributed import rank_and_world

    run = rundir.RunDir(settings.out)
    complete = run.is_complete()
    if complete and not settings.overwrite:
        raise rundir.RunDirError(f"{run.path}: a complete run is already there; pass --overwrite to replace it")
    rank, world = rank_and_world()
    if rank == 0:
        if complete and fresh_fit:
            run.prepare_fresh(overwrite=True)
        os.makedirs(run.path, exist_ok=True)
        manifest = run.manifest() if run.exists() else rundir.new_manifest(command_line)
        manifest.update(settings.manifest_fields(), command=command_line, world_size=world,
                        versions=rundir.package_versions(), inputs=input_hashes(settings))
        if fresh_fit:
            manifest["status"] = "fitting"
        elif complete:                      # score --overwrite: the old results are about to be replaced
            manifest["status"] = "scoring"
        run.write_manifest(manifest)
    return run


def input_hashes(settings: Settings) -> dict:
    hashes = {"corpus": {"path": settings.corpus, "sha256": rundir.sha256_of_file(settings.corpus)}}
    if settings.queries:
        hashes["queries"] = {"path": settings.queries, "sha256": rundir.sha256_of_file(settings.queries)}
    return hashes


def reusable_factors(run: rundir.RunDir, settings: Settings):
    from engine.factors import Factors

    if not os.path.exists(run.file(rundir.FACTORS_DIR, "factors.safetensors")):
        return None
    if not run.exists() or run.manifest().get("fit_key") != settings.fit_key():
        return None
    return Factors.load(run.file(rundir.FACTORS_DIR))


def guarded(run: rundir.RunDir, body) -> None:
    """Run `body`; on any failure mark the run failed (rank 0) so that it never looks complete."""
    from engine.distributed import rank_and_world
    try:
        body()
    except BaseException:
        if rank_and_world()[0] == 0 and run.exists():
            run.set_status("failed")
        raise
    finally:
        finish_distributed()


def finish_distributed() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def fit_command(args, command_line: str, progress: bool = True) -> None:
    settings = Settings.from_args(args)
    corpus = read_corpus(settings.corpus)
    run = begin(settings, command_line, fresh_fit=True)

    def body():
        session = open_session(settings)
        fit_stage(run, settings, corpus, session, progress and session.rank == 0)
        log.info("factors written to %s", run.file(rundir.FACTORS_DIR))
    guarded(run, body)


def score_command(args, command_line: str, progress: bool = True) -> None:
    from engine.factors import Factors

    settings = Settings.from_args(args)
    corpus, queries = read_corpus(settings.corpus), read_queries(settings.queries)
    run = rundir.RunDir(settings.out)
    if not os.path.exists(run.file(rundir.FACTORS_DIR, "meta.json")):
        raise rundir.RunDirError(f"{run.path}: no factors; run `python -m precompute fit` with --out {run.path} first")
    run = begin(settings, command_line, fresh_fit=False)

    def body():
        factors = Factors.load(run.file(rundir.FACTORS_DIR))
        session = open_session(settings, modules=factors.modules)
        score_stage(run, settings, corpus, queries, session, factors, progress and session.rank == 0)
        if session.rank == 0:
            analyze_stage(run, settings.top_k, progress)
            log.info("run complete: %s", run.path)
    guarded(run, body)


def run_command(args, command_line: str, progress: bool = True) -> None:
    settings = Settings.from_args(args)
    corpus, queries = read_corpus(settings.corpus), read_queries(settings.queries)
    run = rundir.RunDir(settings.out)
    factors = None if (settings.overwrite and run.is_complete()) else reusable_factors(run, settings)
    run = begin(settings, command_line, fresh_fit=factors is None)

    def body():
        session = open_session(settings, modules=factors.modules if factors else None)
        show = progress and session.rank == 0
        if factors is not None:
            log.info("re-using the factors already in %s", run.path)
        fitted = factors or fit_stage(run, settings, corpus, session, show)
        score_stage(run, settings, corpus, queries, session, fitted, show)
        if session.rank == 0:
            analyze_stage(run, settings.top_k, progress)
            log.info("run complete: %s", run.path)
    guarded(run, body)


def analyze_command(args, progress: bool = True) -> None:
    run = rundir.RunDir(args.out)
    manifest = run.manifest()
    missing = [name for name in (rundir.SCORES, rundir.QUERIES, rundir.DOCUMENTS) if not os.path.exists(run.file(name))]
    if missing:
        raise rundir.RunDirError(f"{run.path}: no scores to analyse (missing {', '.join(missing)}; "
                                 f"status {manifest.get('status')!r})")
    analyze_stage(run, args.top_k, progress)
    print(f"analysis written: {run.file(rundir.ANALYSIS_DIR)}")
