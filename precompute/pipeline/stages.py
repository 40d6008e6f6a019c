"""The stages fit → score → token scores → analyze, on one process or under torchrun.

Each stage reads what earlier stages wrote and never rewrites it (validate and counterfactual, later commands,
replace only their own records in analysis/findings.json: analysis.runner.replace_findings). Resumable: scoring writes one chunk per
document range into RUN/chunks/ (atomically); the same command run again re-uses the factors and every finished
chunk, and ends with the same scores. Streaming: a chunk's documents are tokenized only when that chunk is
scored; the chunk keeps their token counts and truncation flags, which rank 0 assembles for documents.parquet,
the manifest counts and the one truncation warning. Distributed: chunks are dealt to ranks in contiguous blocks,
factor statistics are all-reduced by the engine, rank 0 writes the files; with --module-shards K the ranks also
split the factors by module and K ranks score each chunk for their modules (precompute/pipeline/factor_shards.py). With
--index (settings.index) the same forward+backward also compresses every document's gradient: the chunks carry
the vectors and rank 0 finishes RUN/index/ from them (precompute/index/build.py) right after the score files.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from precompute import analysis, rundir
from precompute.rundir.errors import UserInputError
from precompute.pipeline.factor_shards import gather_queries, module_grid, save_factors, sum_partial_scores
from precompute.inputs.readers import Corpus, Queries
from precompute.rundir import layout, writers
from precompute.pipeline.chunk_loop import fill_chunks
from precompute.pipeline.measurement import answers_of, measured_query_tokens
from precompute.pipeline.session import Session, barrier
from precompute.pipeline.settings import Settings
from precompute.pipeline.token_stage import token_stage

log = logging.getLogger("precompute")


def warn_truncated(corpus: Corpus, truncated: np.ndarray, max_length: int) -> None:
    flagged = np.flatnonzero(truncated)
    if len(flagged):
        first = int(flagged[0])
        log.warning("%d documents longer than --max-length %d tokens were truncated (first: %s, id %r)",
                    len(flagged), max_length, corpus.where(first), corpus.ids[first])


def tokenize_queries(session: Session, queries: Queries, settings: Settings) -> list:
    """The run's queries tokenized for its measurement; a query that cannot be is one line naming its file line."""
    from engine.errors import EngineInputError

    tokenized = []
    for record, line in zip(queries.records, queries.lines):
        try:
            tokenized += measured_query_tokens(session.tokenizer, [record["prompt"]], [record["completion"]],
                                               answers_of([record]), settings.max_length, settings.measurement)
        except EngineInputError as error:
            message = str(error).removeprefix("query 0").lstrip(": ")
            raise UserInputError(f"{queries.path}: line {line}: field {error.field or 'completion'!r}: "
                                 f"{message}") from None
    return tokenized


def fit_stage(run: rundir.RunDir, settings: Settings, corpus: Corpus, session: Session, progress: bool):
    from engine.batches import make_batches, tokenize_documents
    from engine.distributed import shard
    from engine.factors import FactorArguments, fit_factors

    started = time.perf_counter()
    grid = module_grid(settings)
    n_fit = min(settings.factor_docs or len(corpus), len(corpus))
    chosen = np.sort(np.random.default_rng(settings.seed).choice(len(corpus), size=n_fit, replace=False))
    mine = chosen[list(shard(n_fit, grid.data_group, grid.n_data_groups))]
    log.info("fitting %s factors (%s Fisher) on %d documents", settings.strategy, settings.fisher, n_fit)
    docs = tokenize_documents(session.tokenizer, [corpus.texts[i] for i in mine], settings.max_length)
    docs.sort(key=lambda item: len(item.input_ids))       # batches of similar length: less padding
    batches = list(make_batches(docs, settings.batch_size, session.tokenizer.pad_token_id))
    factors = fit_factors(session.model, session.tracked, batches,
                          FactorArguments(settings.strategy, settings.fisher, settings.seed, settings.factor_dtype),
                          progress=progress, grid=grid)
    save_factors(run, factors, grid, session)
    if session.rank == 0:
        run.update_manifest(status="fitted", fit_key=settings.fit_key(), layers=factors.modules,
                            factor_docs=n_fit, device=session.device)
        run.record_timing("fit", time.perf_counter() - started)
    barrier(session)
    return factors


def score_chunk(session: Session, pq, documents: list, batch_size: int, n_queries: int, bar,
                compressors: list = (), vectors_dtype: str = "float32", layers: list[str] | None = None,
                query_batches: list | None = None) -> dict:
    """Scores, layer scores and gradient norms of one chunk's documents (batched by length), in chunk order; with
    `compressors` also their vectors (the index's chunk parts, "vectors" then "keys"). `layers`: every module
    (pq's may be one module shard: the others' layer scores stay 0); `query_batches`: pq in parts that fit the
    memory budget (engine.scoring.within_budget), one forward+backward each."""
    from engine.batches import make_batches
    from engine.scoring import score_documents
    from precompute.index.build import CHUNK_PARTS, put_vectors

    n = len(documents)
    layers = list(layers or pq.modules)
    chunk = {"scores": np.zeros((n_queries, n), np.float32),
             "layer_scores": np.zeros((n_queries, len(layers), n), np.float32),
             "grad_norms": np.zeros(n, np.float32),
             "n_tokens": np.asarray([len(item.input_ids) for item in documents], dtype=np.int64),
             "truncated": np.asarray([item.truncated for item in documents], dtype=bool)}
    by_length = sorted(range(n), key=lambda j: len(documents[j].input_ids))   # less padding
    batches = list(make_batches([documents[j] for j in by_length], batch_size, session.tokenizer.pad_token_id))
    vectors = [np.zeros((n, c.total_dim), np.dtype(vectors_dtype)) for c in compressors]
    rows, positions = 0, [layers.index(name) for name in pq.modules]
    for number, part in enumerate(query_batches or [pq]):
        block = np.arange(rows, rows + part.n_queries)
        for result in score_documents(session.model, session.tracked, part, batches, progress=False,
                                      compressors=compressors if number == 0 else ()):
            columns = [by_length[j] for j in result.index]
            chunk["scores"][np.ix_(block, columns)] = result.scores.numpy()
            chunk["layer_scores"][np.ix_(block, positions, columns)] = result.layer_scores.numpy()
            if number == 0:
                chunk["grad_norms"][columns] = result.grad_norms.numpy()
                if compressors:
                    put_vectors(vectors, columns, result.vectors, vectors_dtype)
                bar.update(len(columns))
        rows += part.n_queries
    return {**chunk, **dict(zip(CHUNK_PARTS, vectors))}


def score_stage(run: rundir.RunDir, settings: Settings, corpus: Corpus, queries: Queries, session: Session,
                factors, progress: bool):
    """Scores every document against every query; returns the preconditioned queries (for token scores)."""
    from engine.batches import tokenize_documents
    from engine.distributed import shard
    from engine.query_stream import preconditioned_queries
    from engine.scoring import within_budget

    started = time.perf_counter()
    grid = module_grid(settings)
    if session.rank == 0:
        run.set_status("scoring")
    query_tokens = tokenize_queries(session, queries, settings)
    log.info("query gradients for %d queries; preconditioning (damping %s, rank %s)", len(queries),
             settings.damping, settings.query_rank or "full")
    pq, nats = preconditioned_queries(session.model, {n: session.tracked[n] for n in factors.local_modules},
                                      query_tokens, factors,
                                      settings.query_arguments(),
                                      settings.batch_size, progress=progress and session.rank == 0,
                                      task=settings.task())

    built = index_in_scoring(run, settings, session, factors)
    store = rundir.ChunkStore(run)
    key = settings.score_key(settings.fit_key() | {
        "factors_sha256": rundir.factors_sha256(run.file(layout.FACTORS_DIR))})
    if session.rank == 0 and store.open(key):
        log.info("resuming: %d score chunks already written", len(store.completed()))
    barrier(session)
    ranges = rundir.chunk_ranges(len(corpus), settings.documents_per_chunk)
    mine = [ranges[i] for i in shard(len(ranges), grid.data_group, grid.n_data_groups)]
    query_batches = within_budget(pq, settings.memory_budget)

    def compute(start: int, stop: int, bar):
        documents = tokenize_documents(session.tokenizer, corpus.texts[start:stop], settings.max_length)
        chunk = score_chunk(session, pq, documents, settings.batch_size, len(queries), bar, built[2],
                            settings.index.dtype if settings.index else "float32", factors.modules, query_batches)
        chunk = sum_partial_scores(chunk, grid)           # the other module shards' layers (--module-shards)
        return chunk if grid.module_shard == 0 else None

    fill_chunks(store, mine, compute, f"scoring documents (rank {session.rank})", progress)
    barrier(session)
    pq = gather_queries(pq, factors, grid)
    if session.rank == 0:
        write_score_files(run, store, ranges, corpus, queries, query_tokens, nats.numpy(), pq, settings)
        run.update_manifest(device=session.device)
        run.record_timing("score", time.perf_counter() - started)
        if settings.index is not None:
            from precompute.index.build import finish_from_scoring
            finished = time.perf_counter()
            finish_from_scoring(run.path, settings, session, factors, corpus.ids, built, store, ranges,
                                finished - started)
            run.record_timing("index_finish", time.perf_counter() - finished)
    return pq


def index_in_scoring(run: rundir.RunDir, settings: Settings, session: Session, factors) -> tuple:
    """With --index: (the stored compressor, the keys projection or None, both) for the scoring pass, and the
    index marked building (rank 0; a complete one is replaced). Without: (None, None, [])."""
    if settings.index is None:
        return None, None, []
    from precompute.index.build import compressors_of, start_building

    if session.rank == 0:
        start_building(run.path, overwrite=True, method=settings.index.method)
    return compressors_of(settings.index, factors, settings.damping)


def write_score_files(run, store, ranges, corpus: Corpus, queries: Queries, query_tokens, nats, pq,
                      settings: Settings) -> None:
    """Rank 0: the score files from the chunks, then documents, queries, layers and the manifest's counts."""
    from engine.batches import IGNORE
    log.info("writing score files from %d chunks", len(ranges))
    files = writers.ScoreFiles(run, len(queries), len(pq.modules), len(corpus))
    n_tokens, truncated = np.zeros(len(corpus), np.int64), np.zeros(len(corpus), bool)
    try:
        for start, stop in ranges:
            chunk = store.read(start, stop)
            files.put_columns(start, stop, chunk["scores"], chunk["layer_scores"], chunk["grad_norms"])
            n_tokens[start:stop], truncated[start:stop] = chunk["n_tokens"], chunk["truncated"]
    except BaseException:
        files.abort()
        raise
    files.commit()
    warn_truncated(corpus, truncated, settings.max_length)
    writers.write_documents(run, corpus.ids, corpus.sources, corpus.texts, n_tokens, truncated, corpus.metadata)
    writers.write_queries(run, [
        {**record, "nats": float(value), "n_completion_tokens": int(sum(label != IGNORE for label in item.labels))}
        for record, item, value in zip(queries.records, query_tokens, nats)])
    writers.write_layers(run, pq.modules)
    run.update_manifest(status="token_scores", damping_used=pq.damping,
                        versions=rundir.package_versions(), counts={
                            "queries": len(queries), "documents": len(corpus), "layers": len(pq.modules),
                            "document_tokens": int(n_tokens.sum()), "truncated_documents": int(truncated.sum())})


def token_scores_stage(run: rundir.RunDir, settings: Settings, corpus: Corpus, queries: Queries, session: Session,
                       pq, progress: bool) -> None:
    started = time.perf_counter()
    token_stage(run, session, pq, corpus, queries, settings.max_length, settings.token_topk, settings.batch_size,
                progress)
    run.record_timing("token_scores", time.perf_counter() - started)
    rundir.ChunkStore(run).remove()


def analyze_stage(run: rundir.RunDir, top_k: int, progress: bool) -> None:
    started = time.perf_counter()
    run.set_status("analyzing")
    log.info("analysing %s", run.path)
    tables = analysis.analyze_run(run, top_k=top_k, progress=progress)
    run.record_timing("analyze", time.perf_counter() - started)
    manifest = run.manifest()
    missing = run.missing_files(with_factors=not (manifest.get("synthetic") or manifest.get("imported")))
    if manifest.get("imported"):  # published scores come without per-token scores (docs/published-data.md)
        missing = [name for name in missing if name != layout.TOKEN_SCORES]
    if missing:
        raise UserInputError(f"{run.path}: cannot mark complete, missing {', '.join(missing)}")
    run.set_status("complete")
    for record in tables["findings"].get("findings", []):
        log.info("finding: %s", record.get("text", record))
