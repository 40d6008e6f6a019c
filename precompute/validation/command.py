"""`python -m precompute validate --run DIR`: does training on a query's top documents change its answer?

For each query (or a seeded sample), from the run's model each time: S plain SGD steps of the summed-token NLL
(the loss the scores differentiate) on the query's top-k documents by the run's scores, then Δ log p(completion
| prompt); the same for its bottom-k, for the top-k of BM25 and of other runs (`--strategy-runs`), and for R
random k-sets drawn once per run (the chance band). `--lr auto` picks one learning rate per run at which the run's
own top- and bottom-k sets — the sets with the largest gradients — are in the first-order regime (measured Δ within
10% of the first-order prediction on a probe sample); see docs/validation.md.
Adding a ranking method later (another `--strategy-runs`) computes only that method's sets (validation_store).

Writes RUN/analysis/validation.parquet, refreshes its summary tables and findings (precompute.analysis.tables.
validation; `analyze` recomputes them too), and a `validation` entry in the manifest. Resumable: every random
set and every (query, method) is one file in RUN/validation_chunks/, written atomically; the same command again
re-uses them (other settings discard them).
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute import rundir

from precompute.validation import sets as validation_sets
from precompute.rundir.errors import UserInputError
from precompute.rundir import layout
from precompute.pipeline.flag_values import keyword_or_number, positive_int
from precompute.validation.store import VALIDATION_FILE, ValidationStore

log = logging.getLogger("precompute.validation.command")
PROBE_QUERIES = 8             # --lr auto: queries whose top- and bottom-k sets set the lr
EXIT_AFTER_ENV = "PRECOMPUTE_TEST_VALIDATE_EXIT_AFTER"   # test hook: die (like a kill) after N query files
COLUMNS = ["query_id", "task", "method", "set", "draw", "k", "steps", "lr", "delta_logprob", "delta_per_token",
           "n_completion_tokens", "set_tokens", "logprob_before"]


@dataclass
class ValidateOptions:
    k: int = 20
    random_draws: int = 8
    steps: int = 1
    lr: str | float = "auto"
    lr_target: float = 0.05               # --lr auto: median first-order |Δ log p| (nats) of the run's own
                                          # top/bottom k-sets on the probe queries (then checked to be first order)
    queries: str = "all"
    strategy_runs: list[str] = field(default_factory=list)
    bm25: bool = True
    params: str = "tracked"               # tracked (the scored modules) | all
    seed: int = 0
    batch_size: int = 8
    model: str | None = None              # default: the run's model
    device: str | None = None             # default: the run's device


def add_validate_flags(parser: argparse.ArgumentParser) -> None:
    default = ValidateOptions()
    parser.add_argument("--run", "--out", dest="out", metavar="RUN", required=True, help="a complete run directory")
    parser.add_argument("--k", type=positive_int, default=default.k, help="documents per tail-patched set")
    parser.add_argument("--random-draws", type=positive_int, default=default.random_draws,
                        help="random k-sets (drawn once per run, applied to every query)")
    parser.add_argument("--steps", type=positive_int, default=default.steps, help="SGD steps per set")
    parser.add_argument("--lr", default="auto", help="learning rate, or auto (see --lr-target)")
    parser.add_argument("--lr-target", type=float, default=default.lr_target,
                        help="auto: median first-order |Δ log p| (nats) of the run's own top/bottom k-sets; lr is "
                             "then halved until measured Δ is within 10%% of first order")
    parser.add_argument("--queries", default="all", help="all, or N for a seeded sample of N queries")
    parser.add_argument("--strategy-runs", nargs="*", default=[], metavar="RUN",
                        help="other runs of the same model and corpus whose rankings are validated too")
    parser.add_argument("--no-bm25", dest="bm25", action="store_false", help="skip the BM25 baseline")
    parser.add_argument("--params", default=default.params, choices=["tracked", "all"],
                        help="parameters the SGD steps change: the run's tracked modules, or every parameter")
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--batch-size", type=positive_int, default=default.batch_size)
    parser.add_argument("--model", default=None, help="model to load (default: the one the run recorded)")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])


def options_from_args(args: argparse.Namespace) -> ValidateOptions:
    return ValidateOptions(k=args.k, random_draws=args.random_draws, steps=args.steps, lr=parse_lr(args.lr),
                           lr_target=args.lr_target, queries=str(args.queries), strategy_runs=list(args.strategy_runs),
                           bm25=args.bm25, params=args.params, seed=args.seed, batch_size=args.batch_size,
                           model=args.model, device=args.device)


def parse_lr(value) -> str | float:
    return keyword_or_number(value, "--lr", "auto")


def validate_main(args: argparse.Namespace, command_line: str, progress: bool = True) -> None:
    """The CLI command (precompute.__main__ holds the run's lock around it)."""
    frame = validate_run(args.out, options_from_args(args), progress=progress)
    print(f"validation written: {os.path.join(args.out, layout.ANALYSIS_DIR, VALIDATION_FILE)} "
          f"({frame['query_id'].nunique()} queries)")


# ---------------------------------------------------------------- the plan: everything checked before writing

@dataclass
class Plan:
    run: rundir.Run
    options: ValidateOptions
    query_ids: list[str]
    methods: list[validation_sets.MethodSets]
    random: np.ndarray                    # [R, k] document columns
    texts: pd.Series


def make_plan(path: str, options: ValidateOptions) -> Plan:
    """Open and check the run and every input; raises UserInputError (one line) before anything is written."""
    run = validation_sets.open_run(path)
    if not run.has_model:
        raise UserInputError(f"{path}: a synthetic or imported run has no model to tail-patch")
    if options.k > run.n_documents:
        raise UserInputError(f"--k {options.k} is larger than the corpus ({run.n_documents} documents)")
    if options.lr_target <= 0:
        raise UserInputError(f"--lr-target must be positive, got {options.lr_target}")
    rows = validation_sets.select_queries(run.n_queries, options.queries, options.seed)
    query_ids = [str(run.queries["id"].iloc[row]) for row in rows]
    methods = [validation_sets.score_sets(str(run.manifest.get("strategy", "run")), run, query_ids, options.k)]
    for other in options.strategy_runs:
        methods.append(validation_sets.strategy_run_sets(run, other, query_ids, options.k, {m.name for m in methods}))
    texts = run.document_texts()
    if options.bm25:
        methods.append(validation_sets.bm25_sets(run, list(texts), query_ids, options.k))
    tokens = run.documents["n_tokens"].to_numpy(np.float64)
    random = validation_sets.random_sets(run.n_documents, options.k, options.random_draws, options.seed, tokens,
                                         validation_sets.ranked_set_tokens(methods[0], tokens))
    return Plan(run, options, query_ids, methods, random, texts)


def fingerprint(plan: Plan) -> dict:
    """Everything every stored file depends on (a change discards the store); ranking methods are not in it:
    their files carry their own tags, so adding a method re-uses the rest."""
    options = asdict(plan.options)
    for name in ("batch_size", "device", "model", "strategy_runs", "bm25"):
        options.pop(name)
    return {"options": options, "model": validation_sets.model_key(plan.run),
            "scores_sha256": rundir.sha256_of_file(str(plan.run.path / layout.SCORES)),
            "queries": plan.query_ids, "random": plan.random.tolist()}


# ---------------------------------------------------------------- the torch side

def validate_run(path: str, options: ValidateOptions, progress: bool = True, session=None) -> pd.DataFrame:
    """Validate the complete run at `path`; `session` (precompute.pipeline.session.Session) re-uses a loaded model."""
    from precompute.validation.patch import Patcher

    started, cpu_started = time.perf_counter(), time.process_time()
    plan = make_plan(path, options)
    patcher = Patcher.open(plan, session)
    store, key = ValidationStore(path), fingerprint(plan)
    tags = {m.name: m.tag for m in plan.methods}
    kept = store.open(key)
    seeded = store.seed_from_previous(key, plan.query_ids, tags)
    if kept or seeded:
        log.info("re-using %d files of earlier validation work (%d from an interrupted attempt)", kept + seeded,
                 kept)
    lr, calibration = resolve_lr(plan, patcher, store)
    log.info("tail-patch: %d SGD step(s), lr %.4g, k %d, %d random sets, methods %s", options.steps, lr, options.k,
             options.random_draws, ", ".join(m.name for m in plan.methods))
    total = options.random_draws + sum(len(m.sets.get(q, {})) for m in plan.methods for q in plan.query_ids)
    done = sum(os.path.exists(store.random_path(d)) for d in range(options.random_draws)) + sum(
        len(m.sets.get(q, {})) for n, q in enumerate(plan.query_ids) for m in plan.methods
        if os.path.exists(store.query_path(n, m.tag)))
    bar = tqdm(total=total, initial=done, desc="validate: tail-patched sets", unit="set", disable=not progress)
    run_random_draws(plan, patcher, store, lr, bar)
    run_queries(plan, patcher, store, lr, bar)
    bar.close()
    frame = store.assemble(plan.query_ids, tags, options.random_draws, COLUMNS)
    write_outputs(plan, frame, lr, calibration, {**key, "chunk_format": layout.CHUNK_FORMAT}, tags,
                  time.perf_counter() - started, time.process_time() - cpu_started)
    store.remove()
    return frame


def resolve_lr(plan: Plan, patcher, store: ValidationStore) -> tuple[float, dict]:
    """The learning rate: given, kept from earlier work, or calibrated (--lr auto)."""
    if plan.options.lr != "auto":
        return float(plan.options.lr), {"lr": float(plan.options.lr), "mode": "given"}
    calibration = store.read_lr()
    if calibration is not None:
        return float(calibration["lr"]), calibration
    rows = np.random.default_rng([plan.options.seed, 3]).permutation(len(plan.query_ids))[:PROBE_QUERIES]
    own = plan.methods[0]
    probe = [(plan.query_ids[i], columns) for i in sorted(rows)
             for columns in own.sets.get(plan.query_ids[i], {}).values()]
    calibration = patcher.calibrate(probe, plan.options.steps, plan.options.lr_target)
    store.write_lr(calibration)
    return float(calibration["lr"]), calibration


def rows_for(plan: Plan, query_id: str, method: str, side: str, draw: int, lr: float, result, n_tokens: int,
             before: float) -> dict:
    return {"query_id": query_id, "task": str(plan.run.queries["task"].iloc[plan.run.query_row(query_id)]),
            "method": method, "set": side, "draw": draw, "k": plan.options.k, "steps": plan.options.steps, "lr": lr,
            "delta_logprob": result.delta_logprob, "delta_per_token": result.delta_logprob / max(result.n_tokens, 1),
            "n_completion_tokens": result.n_tokens, "set_tokens": n_tokens, "logprob_before": before}


def run_random_draws(plan: Plan, patcher, store: ValidationStore, lr: float, bar) -> None:
    """Each random k-set patched once; every validated query measured under it (one file per draw)."""
    for draw, columns in enumerate(plan.random):
        path = store.random_path(draw)
        if not os.path.exists(path):
            results, n_tokens = patcher.deltas(plan.query_ids, columns, lr, plan.options.steps)
            rows = [rows_for(plan, q, "random", "random", draw, lr, r, n_tokens, patcher.before_total(q))
                    for q, r in zip(plan.query_ids, results)]
            rundir.write_parquet(path, pd.DataFrame(rows, columns=COLUMNS))
            bar.update(1)


def run_queries(plan: Plan, patcher, store: ValidationStore, lr: float, bar) -> None:
    """Per query and ranking method: its top (and bottom) k-set, one file per (query, method)."""
    exit_after, written = int(os.environ.get(EXIT_AFTER_ENV, "0")), 0
    for number, query_id in enumerate(plan.query_ids):
        for method in plan.methods:
            sets = method.sets.get(query_id, {})
            path = store.query_path(number, method.tag)
            if not sets or os.path.exists(path):
                continue
            rows = []
            for side, columns in sets.items():
                results, n_tokens = patcher.deltas([query_id], columns, lr, plan.options.steps)
                rows.append(rows_for(plan, query_id, method.name, side, 0, lr, results[0], n_tokens,
                                     patcher.before_total(query_id)))
                bar.update(1)
            rundir.write_parquet(path, pd.DataFrame(rows, columns=COLUMNS))
        written += 1
        if exit_after and written >= exit_after:
            log.warning("%s=%d: exiting abruptly (test hook)", EXIT_AFTER_ENV, exit_after)
            os._exit(75)


def write_outputs(plan: Plan, frame: pd.DataFrame, lr: float, calibration: dict, key: dict, tags: dict,
                  seconds: float, cpu_seconds: float) -> None:
    from precompute.analysis.tables import validation as validation_tables

    run = rundir.RunDir(str(plan.run.path))
    analysis = run.file(layout.ANALYSIS_DIR)
    rundir.write_parquet(os.path.join(analysis, VALIDATION_FILE), frame)
    validation_tables.refresh(run)
    random = frame[frame["set"] == "random"]["delta_logprob"].abs()
    run.update_manifest(validation={
        **{key: value for key, value in asdict(plan.options).items() if key not in ("model", "device")},
        "lr": lr, "calibration": calibration, "methods": {m.name: m.source for m in plan.methods},
        "fingerprint": key, "method_tags": tags,
        "n_queries": len(plan.query_ids), "random_sets": plan.random.tolist(),
        "median_abs_random_delta": float(random.median()) if len(random) else None,
        "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3)})
    run.record_timing("validate", seconds)
