"""The commands that make a run from a model: fit, score, run (fit + score + token scores + analyze), analyze.

Each takes the one `Settings` built from the CLI flags. A run directory says `"status": "complete"` only once
every file is written; any failure marks it "failed" so that it never looks complete.
"""
from __future__ import annotations

import logging
import os

from precompute import rundir
from precompute.inputs.corpus_shards import corpus_sha256
from precompute.inputs.readers import read_corpus, read_queries
from precompute.pipeline.factor_shards import load_factors
from precompute.pipeline.stages import analyze_stage, fit_stage, score_stage, token_scores_stage
from precompute.plan.command import check_plan
from precompute.rundir import layout
from precompute.rundir.factor_files import missing_factor_files
from precompute.pipeline.session import finish_distributed, open_session
from precompute.pipeline.settings import Settings

log = logging.getLogger("precompute")


def input_hashes(settings: Settings) -> dict:
    hashes = {"corpus": {"path": settings.corpus, "sha256": corpus_sha256(settings.corpus)}}
    if settings.queries:
        hashes["queries"] = {"path": settings.queries, "sha256": rundir.sha256_of_file(settings.queries)}
    return hashes


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


def reusable_factors(run: rundir.RunDir, settings: Settings):
    """The run's factors' meta.json (no tensors yet) when they were fitted with these settings, else None."""
    from engine.factors import Factors

    if missing_factor_files(run.file(layout.FACTORS_DIR)):
        return None
    if not run.exists() or run.manifest().get("fit_key") != settings.fit_key():
        return None
    return Factors.load(run.file(layout.FACTORS_DIR), modules=[])


def guarded(run: rundir.RunDir, body) -> None:
    """Run `body`; on a failure before the run is complete mark it failed (rank 0) so that it never looks
    complete (a failure after that, e.g. in validation, leaves the complete run as it is)."""
    from engine.distributed import rank_and_world
    try:
        body()
    except BaseException:
        if rank_and_world()[0] == 0 and run.exists() and not run.is_complete():
            run.set_status("failed")
        raise
    finally:
        finish_distributed()


def fit_command(settings: Settings, command_line: str, progress: bool = True) -> None:
    corpus = read_corpus(settings.corpus)
    check_plan(settings, corpus.texts, None, "fit")
    run = begin(settings, command_line, fresh_fit=True)

    def body():
        session = open_session(settings)
        fit_stage(run, settings, corpus, session, progress and session.rank == 0)
        log.info("factors written to %s", run.file(layout.FACTORS_DIR))
    guarded(run, body)


def score_and_analyze(run, settings: Settings, corpus, queries, session, factors, progress: bool) -> None:
    show = progress and session.rank == 0
    pq = score_stage(run, settings, corpus, queries, session, factors, show)
    if session.rank == 0:
        token_scores_stage(run, settings, corpus, queries, session, pq, show)
        analyze_stage(run, settings.top_k, progress)
        log.info("run complete: %s", run.path)
        if settings.validate:
            from precompute.validation.command import ValidateOptions, validate_run
            log.info("validating the rankings by tail-patching (precompute validate)")
            validate_run(run.path, ValidateOptions(), progress, session=session)
        if settings.counterfactual:
            from precompute.counterfactual.command import CounterfactualOptions, counterfactual_run
            log.info("PBRF responses and the LDS of the rankings (precompute counterfactual)")
            counterfactual_run(run.path, CounterfactualOptions(), progress, session=session)


def score_command(settings: Settings, command_line: str, progress: bool = True) -> None:
    from engine.factors import Factors

    corpus, queries = read_corpus(settings.corpus), read_queries(settings.queries)
    check_plan(settings, corpus.texts, queries.records, "score")
    run = rundir.RunDir(settings.out)
    if not os.path.exists(run.file(layout.FACTORS_DIR, layout.FACTOR_META)):
        raise rundir.RunDirError(f"{run.path}: no factors; run `python -m precompute fit` with --out {run.path} first")
    run = begin(settings, command_line, fresh_fit=False)

    def body():
        modules = Factors.load(run.file(layout.FACTORS_DIR), modules=[]).modules
        session = open_session(settings, modules=modules)
        factors = load_factors(run, settings, modules)        # this rank's module shard (--module-shards)
        score_and_analyze(run, settings, corpus, queries, session, factors, progress)
    guarded(run, body)


def run_command(settings: Settings, command_line: str, progress: bool = True) -> None:
    corpus, queries = read_corpus(settings.corpus), read_queries(settings.queries)
    check_plan(settings, corpus.texts, queries.records, "run")
    run = rundir.RunDir(settings.out)
    factors = None if (settings.overwrite and run.is_complete()) else reusable_factors(run, settings)
    run = begin(settings, command_line, fresh_fit=factors is None)

    def body():
        session = open_session(settings, modules=factors.modules if factors else None)
        if factors is not None:
            log.info("re-using the factors already in %s", run.path)
        fitted = load_factors(run, settings, factors.modules) if factors else \
            fit_stage(run, settings, corpus, session, progress and session.rank == 0)
        score_and_analyze(run, settings, corpus, queries, session, fitted, progress)
    guarded(run, body)


def analyze_command(out: str, top_k: int, progress: bool = True) -> None:
    run = rundir.RunDir(out)
    manifest = run.manifest()
    missing = [name for name in (layout.SCORES, layout.QUERIES, layout.DOCUMENTS) if not os.path.exists(run.file(name))]
    if missing:
        raise rundir.RunDirError(f"{run.path}: no scores to analyse (missing {', '.join(missing)}; "
                                 f"status {manifest.get('status')!r})")
    analyze_stage(run, top_k, progress)
    print(f"analysis written: {run.file(layout.ANALYSIS_DIR)}")
