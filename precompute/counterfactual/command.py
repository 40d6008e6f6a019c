"""`python -m precompute counterfactual --run DIR`: a counterfactual EK-FAC can win or lose fairly (PBRF + LDS).

For M seeded random document sets S_m (of --set-size documents), the proximal Bregman response of the run's model
to up-weighting S_m by ε (engine.pbrf; the run's tracked modules, its damping per module, --anchor-docs seeded
anchor documents for the KL term), and Δ log p(completion | prompt) of every query. Then, per ranking method at
hand — the run's scores, the same divided by ‖G_d‖ (for an identity run: gradient cosine), other runs given with
--strategy-runs (identity, KFAC, ...), BM25 — the prediction Σ_{d∈S_m} score(q, d) per (set, query), written to
RUN/analysis/counterfactual.parquet; the LDS tables and findings (precompute.analysis.tables.lds) follow.

Responses are stored by what they depend on (precompute.counterfactual.store): RUN/counterfactual/ by default,
or --responses DIR (the demo ships data/pbrf/), so several runs of one world share one computation; resumable
per set. --epsilon auto: a probe solve, ε rescaled so that the pilot set's median |Δ| is --target nats, then
halved until Δ(2ε) ≈ 2 Δ(ε) on the pilot set (least-squares slope within 5% of 2); --linearity-sets more sets
are re-solved at 2ε and their linearity recorded. The run's scores never enter the responses. Docs: docs/counterfactual.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from precompute import rundir

from precompute.validation import sets as validation_sets
from precompute.counterfactual.store import ResponseStore, damping_key, model_sha256, response_matrix
from precompute.rundir.errors import UserInputError
from precompute.rundir import layout
from precompute.pipeline.flag_values import keyword_or_number, positive_int
from precompute.pipeline.settings import Settings

log = logging.getLogger("precompute.counterfactual.command")
COUNTERFACTUAL_FILE = layout.COUNTERFACTUAL
STORE_DIR = layout.COUNTERFACTUAL_STORE
LINEARITY_TOLERANCE = 0.05
MAX_HALVINGS = 4
COLUMNS = ["query_id", "task", "set", "method", "measured", "predicted", "set_tokens"]


@dataclass
class CounterfactualOptions:
    sets: int = 32
    set_size: int = 50
    anchor_docs: int = 128
    max_iterations: int = 500             # conjugate-gradient iterations per Newton step
    tolerance: float = 1e-4               # a solve converged when ‖∇F(θ)‖ ≤ this × ‖∇F(θs)‖
    epsilon: str | float = "auto"
    target: float = 0.005                 # --epsilon auto: median |Δ log p| (nats) of the pilot set
    linearity_sets: int = 2               # sets re-solved at 2ε besides the pilot
    responses: str | None = None          # the response store (default RUN/counterfactual)
    recompute: bool = False
    strategy_runs: list[str] = field(default_factory=list)
    bm25: bool = True
    seed: int = 0
    batch_size: int = 16
    dtype: str = "float64"                # the model's dtype while solving (float64: Δ well above rounding)
    model: str | None = None              # default: the run's model
    device: str | None = None             # default: the run's device


def add_counterfactual_flags(parser: argparse.ArgumentParser) -> None:
    d = CounterfactualOptions()
    parser.add_argument("--run", "--out", dest="out", metavar="RUN", required=True, help="a complete run directory")
    parser.add_argument("--sets", type=positive_int, default=d.sets, help="random document sets M (at least 3)")
    parser.add_argument("--set-size", type=positive_int, default=d.set_size, help="documents per set")
    parser.add_argument("--anchor-docs", type=positive_int, default=d.anchor_docs,
                        help="seeded anchor documents H of the KL term")
    parser.add_argument("--max-iterations", type=positive_int, default=d.max_iterations,
                        help="conjugate-gradient iterations (Gauss-Newton products) per Newton step")
    parser.add_argument("--tolerance", type=float, default=d.tolerance,
                        help="a set's solve has converged when ‖∇F‖ ≤ this × its first ‖∇F‖; unconverged: exit 2")
    parser.add_argument("--epsilon", default="auto", help="up-weighting ε of the set, or auto (see --target)")
    parser.add_argument("--target", type=float, default=d.target,
                        help="auto: median |Δ log p| (nats) of the pilot set at the chosen ε")
    parser.add_argument("--linearity-sets", type=int, default=d.linearity_sets,
                        help="sets (besides the pilot) re-solved at 2ε to check that Δ is linear in ε")
    parser.add_argument("--responses", default=None, metavar="DIR",
                        help="response store to use or fill (default RUN/counterfactual; the demo: data/pbrf)")
    parser.add_argument("--recompute", action="store_true", help="replace stale responses in the store")
    parser.add_argument("--strategy-runs", nargs="*", default=[], metavar="RUN",
                        help="other runs of the same model and corpus whose scores are compared too")
    parser.add_argument("--no-bm25", dest="bm25", action="store_false", help="skip the BM25 baseline")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--dtype", default=d.dtype, choices=["float64", "float32"],
                        help="model dtype while solving (float64 keeps Δ far above rounding noise)")


def parse_epsilon(value) -> str | float:
    return keyword_or_number(value, "--epsilon", "auto")


def options_from_args(args: argparse.Namespace) -> CounterfactualOptions:
    return CounterfactualOptions(
        sets=args.sets, set_size=args.set_size, anchor_docs=args.anchor_docs, max_iterations=args.max_iterations,
        tolerance=args.tolerance, epsilon=parse_epsilon(args.epsilon), target=args.target,
        linearity_sets=args.linearity_sets, responses=args.responses, recompute=args.recompute,
        strategy_runs=list(args.strategy_runs), bm25=args.bm25, seed=args.seed, batch_size=args.batch_size,
        dtype=args.dtype)


def counterfactual_main(args: argparse.Namespace, command_line: str, progress: bool = True) -> None:
    frame = counterfactual_run(args.out, options_from_args(args), progress=progress)
    print(f"counterfactual written: {os.path.join(args.out, layout.ANALYSIS_DIR, COUNTERFACTUAL_FILE)} "
          f"({frame['query_id'].nunique()} queries, {frame['set'].nunique()} sets, "
          f"methods {', '.join(frame['method'].unique())})")


# ---------------------------------------------------------------- the plan: everything checked before writing

@dataclass
class Plan:
    run: rundir.Run
    options: CounterfactualOptions
    sets: np.ndarray                      # [M, set_size] document columns
    anchors: np.ndarray                   # [anchor_docs] document columns
    damping: dict[str, float]
    key: dict
    store: ResponseStore


def make_plan(path: str, options: CounterfactualOptions) -> Plan:
    """Open and check the run and every input; raises UserInputError (one line) before anything is written."""
    run = validation_sets.open_run(path)
    if not run.has_model:
        raise UserInputError(f"{path}: a synthetic or imported run has no model to compute PBRF responses with")
    n = run.n_documents
    if options.sets < 3:
        raise UserInputError(f"--sets {options.sets}: the LDS is a rank correlation across sets; use at least 3")
    for flag, value in (("--set-size", options.set_size), ("--anchor-docs", options.anchor_docs)):
        if value > n:
            raise UserInputError(f"{flag} {value} is larger than the corpus ({n} documents)")
    for flag, value in (("--target", options.target), ("--tolerance", options.tolerance)):
        if not value > 0:
            raise UserInputError(f"{flag} must be positive, got {value}")
    damping = run.manifest.get("damping_used") or {}
    missing = [name for name in run.layers if name not in damping]
    if not damping or missing:
        raise UserInputError(f"{path}: the manifest records no damping_used for module "
                             f"{(missing or ['(any)'])[0]!r}; re-score the run")
    undamped = [name for name in run.layers if not float(damping[name]) > 0]
    if undamped:
        raise UserInputError(f"{path}: damping_used is {damping[undamped[0]]} for {undamped[0]!r} (an identity run?): "
                             "the PBRF needs the damping of a curvature run; run counterfactual on an EK-FAC, KFAC "
                             "or diagonal run and give this one with --strategy-runs")
    sets = np.stack([np.sort(np.random.default_rng([options.seed, 7, m]).choice(n, options.set_size, replace=False))
                     for m in range(options.sets)])
    anchors = np.sort(np.random.default_rng([options.seed, 8]).choice(n, options.anchor_docs, replace=False))
    key = response_key(run, options, damping)
    store = ResponseStore(options.responses or str(run.path / STORE_DIR))
    return Plan(run, options, sets, anchors, {m: float(damping[m]) for m in run.layers}, key, store)


def response_key(run: rundir.Run, options: CounterfactualOptions, damping: dict) -> dict:
    """Everything the responses depend on (a stored response with another key is stale)."""
    texts = run.document_texts()
    queries = run.queries
    spec = validation_sets.model_key(run)
    settings = Settings.from_manifest(run.manifest)
    measured = {} if settings.measurement == "completion" else {"measurement": settings.measurement}  # as before
    return {**measured, "model": model_sha256(spec) if spec else "",
            "corpus": rundir.sha256_of_strings(f"{i}\t{t}" for i, t in zip(run.doc_ids, texts)),
            "queries": rundir.sha256_of_strings(f"{i}\t{p}\t{c}" for i, p, c in zip(queries["id"], queries["prompt"],
                                                                         queries["completion"])),
            "modules": list(run.layers), "damping": damping_key({m: damping[m] for m in run.layers}),
            "max_length": settings.max_length,
            "options": {k: v for k, v in asdict(options).items()
                        if k in ("sets", "set_size", "anchor_docs", "tolerance", "epsilon", "target",
                                 "linearity_sets", "seed", "dtype")}}


# ---------------------------------------------------------------- the run

def counterfactual_run(path: str, options: CounterfactualOptions, progress: bool = True,
                       session=None) -> pd.DataFrame:
    """Responses (stored or computed), every method's predictions, the LDS tables and findings of the run."""
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = make_plan(path, options)
    methods = prediction_sources(plan)                      # checked before any work (one-line errors)
    document = plan.store.check(plan.key, options.recompute)
    source = "stored"
    if document is None:
        from precompute.counterfactual.solve import solve_responses
        document = solve_responses(plan, progress, session)
        source = "computed"
    frame = predictions_frame(plan, document, methods)
    write_outputs(plan, frame, document, source, time.perf_counter() - started,
                  time.process_time() - cpu_started)
    return frame


def prediction_sources(plan: Plan) -> dict[str, np.ndarray]:
    """Per method, its scores over the set documents: [Q, M, set_size] gathered once (numpy, no torch)."""
    run, columns = plan.run, plan.sets
    flat = np.unique(columns)
    where = np.searchsorted(flat, columns)
    own = str(run.manifest.get("strategy") or "run")
    scores = np.asarray(run.scores[:, flat], dtype=np.float64)
    out = {own: scores[:, where]}
    normalized = np.asarray(run.normalized[:, flat], dtype=np.float64)
    out[f"{own}/‖g_d‖"] = normalized[:, where]
    taken = set(out)
    for other_path in plan.options.strategy_runs:
        name, other = other_scores(run, other_path, flat, taken)
        out[name] = other[0][:, where]
        out[f"{name}/‖g_d‖"] = other[1][:, where]
        taken |= {name, f"{name}/‖g_d‖"}
    if plan.options.bm25:
        from precompute.analysis.bm25_ranking import BM25Ranking, query_text
        ranking = BM25Ranking(list(run.document_texts()))
        out[validation_sets.BM25] = np.stack([ranking.scores(query_text(run.queries.iloc[q].to_dict()))[flat]
                                              for q in range(run.n_queries)])[:, where]
    return out


def other_scores(run: rundir.Run, path: str, flat: np.ndarray, taken: set[str]):
    """(name, (scores, normalized) [Q, |flat|]) of another run of the same model and corpus, on this run's queries
    (NaN rows for queries it lacks)."""
    other = validation_sets.open_run(path, "--strategy-runs")
    if validation_sets.model_key(other) != validation_sets.model_key(run):
        raise UserInputError(f"{path}: model {validation_sets.model_key(other)!r} differs from the run's model "
                             f"{validation_sets.model_key(run)!r} (--strategy-runs need the same model and corpus)")
    if other.n_documents != run.n_documents or set(other.doc_ids) != set(run.doc_ids):
        raise UserInputError(f"{path}: its {other.n_documents} documents are not the run's {run.n_documents} "
                             "documents (--strategy-runs need the same corpus)")
    other_columns = other.doc_positions.get_indexer(run.doc_ids[flat]).astype(np.int64)
    rows = {q: n for n, q in enumerate(other.queries["id"])}
    if not set(rows) & set(run.queries["id"]):
        raise UserInputError(f"{path}: shares no query id with the run")
    result = []
    for matrix in (other.scores, other.normalized):
        block = np.full((run.n_queries, len(flat)), np.nan)
        for n, query_id in enumerate(run.queries["id"]):
            if query_id in rows:
                block[n] = np.asarray(matrix[rows[query_id]], dtype=np.float64)[other_columns]
        result.append(block)
    return validation_sets.method_name(other, taken), tuple(result)


def predictions_frame(plan: Plan, document: dict, methods: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long table: one row per (query, set, method) with the measured Δ and the method's Σ_{d∈S} score."""
    run = plan.run
    query_ids = [str(q) for q in run.queries["id"]]
    measured = response_matrix(document, query_ids)                     # [M, Q]
    tokens = np.asarray(run.documents["n_tokens"], dtype=np.int64)[plan.sets].sum(1)
    tasks = run.queries["task"].astype(str).to_numpy()
    frames = []
    for name, gathered in methods.items():
        predicted = gathered.sum(axis=2).T                              # [M, Q]
        frames.append(pd.DataFrame({
            "query_id": np.tile(query_ids, plan.options.sets), "task": np.tile(tasks, plan.options.sets),
            "set": np.repeat(np.arange(plan.options.sets), len(query_ids)), "method": name,
            "measured": measured.ravel(), "predicted": predicted.ravel(),
            "set_tokens": np.repeat(tokens, len(query_ids))}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def convergence(document: dict) -> dict:
    """The solver's residual over the sets: ‖∇F(θ_ε)‖ / ‖∇F(θs)‖ (median and largest) and CG iterations used."""
    diagnostics = document.get("diagnostics") or []
    residual = np.array([d.get("relative_grad_norm", np.nan) for d in diagnostics], dtype=np.float64)
    iterations = np.array([d.get("iterations", 0) for d in diagnostics])
    if not len(residual):
        return {}
    return {"median_relative_grad_norm": float(np.nanmedian(residual)),
            "max_relative_grad_norm": float(np.nanmax(residual)), "median_iterations": float(np.median(iterations))}


def write_outputs(plan: Plan, frame: pd.DataFrame, document: dict, source: str, seconds: float,
                  cpu_seconds: float) -> None:
    from precompute.analysis.tables import lds as lds_tables

    run = rundir.RunDir(str(plan.run.path))
    rundir.write_parquet(run.file(layout.ANALYSIS_DIR, COUNTERFACTUAL_FILE), frame)
    own_store = os.path.abspath(plan.store.path) == os.path.abspath(run.file(STORE_DIR))
    if not own_store:                                   # the run carries its evidence
        os.makedirs(run.file(STORE_DIR), exist_ok=True)
        rundir.write_json(run.file(STORE_DIR, layout.RESPONSES), document)
    lds_tables.refresh(run)
    run.update_manifest(counterfactual={
        **{k: v for k, v in asdict(plan.options).items() if k not in ("recompute",)},
        "epsilon_used": document.get("epsilon"), "source": source, "store": plan.store.path,
        "linearity": document.get("linearity"), "convergence": convergence(document),
        "methods": sorted(frame["method"].unique()), "solve_cost": document.get("cost"),
        "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3)})
    run.record_timing("counterfactual", seconds)
