"""The torch side of `counterfactual`: PBRF responses of the run's model to each seeded set (engine.pbrf), with
--epsilon auto calibrated on a pilot set and linearity checked at 2ε; one stored file per set (resumable)."""
from __future__ import annotations

import copy
import logging
import time

import numpy as np
from tqdm.auto import tqdm

from precompute.pipeline.measurement import answers_of, measured_query_tokens
from precompute.pipeline.settings import Settings
from precompute.rundir import layout
from precompute.rundir.errors import UserInputError

log = logging.getLogger("precompute.counterfactual.command")
PROBE_EPSILON = 1e-6       # --epsilon auto: the first solve (small: linear, so Newton converges in ~2 steps),
                           # then rescaled to the target


def solve_responses(plan, progress: bool = True, session=None) -> dict:
    """Every set's Δ log p(completion) of every query; returns (and stores) the responses document."""
    from precompute.counterfactual.command import LINEARITY_TOLERANCE, MAX_HALVINGS

    started, cpu_started = time.perf_counter(), time.process_time()
    solver = Solver.open(plan, session)
    store, options = plan.store, plan.options
    kept = store.open(plan.key, options.recompute)
    if kept:
        log.info("re-using %d stored PBRF set responses", kept)
    calibration = store.read(store.file(layout.RESPONSES_CALIBRATION))
    if calibration is None:
        calibration = calibrate(plan, solver, LINEARITY_TOLERANCE, MAX_HALVINGS)
        store.write(store.file(layout.RESPONSES_CALIBRATION), calibration)
    epsilon = float(calibration["epsilon"])
    n_linearity = min(options.linearity_sets, options.sets - 1)
    bar = tqdm(total=options.sets + n_linearity, desc="counterfactual: PBRF sets", unit="set",
               disable=not progress)
    results = [solved(solver, store.set_path(number), plan.sets[number], epsilon, bar)
               for number in range(options.sets)]
    linearity = [linearity_record(number, results[number],
                                  solved(solver, store.set_path(number, linearity=True), plan.sets[number],
                                         2 * epsilon, bar))
                 for number in range(1, n_linearity + 1)]
    bar.close()
    require_converged(results, options.tolerance, store.path)
    document = {
        "key": plan.key, "epsilon": epsilon, "calibration": calibration, "linearity": linearity,
        "query_ids": [str(q) for q in plan.run.queries["id"]],
        "set_columns": plan.sets.tolist(), "set_doc_ids": [[str(plan.run.doc_ids[c]) for c in s] for s in plan.sets],
        "anchor_columns": plan.anchors.tolist(),
        "delta": [r["delta"] for r in results],
        "diagnostics": [{k: v for k, v in r.items() if k != "delta"} for r in results],
        "cost": {"seconds": round(time.perf_counter() - started, 1),
                 "cpu_seconds": round(time.process_time() - cpu_started, 1),
                 "sets_seconds": round(sum(r["seconds"] for r in results), 1), "threads": solver.threads}}
    return store.finish(document)


def solved(solver: "Solver", path: str, columns, epsilon: float, bar) -> dict:
    """The stored response at `path`, or a new solve (also when the stored one did not converge and the solver
    now may iterate longer); stored at once (resumable)."""
    record = solver.plan.store.read(path)
    if record is None or (not record.get("converged") and
                          record.get("max_iterations", 0) < solver.arguments.max_iterations):
        record = solver.solve(columns, epsilon)
        solver.plan.store.write(path, record)
    bar.update(1)
    return record


def require_converged(records: list[dict], tolerance: float, where: str) -> None:
    """One line (exit 2) unless every solve reached ‖∇F‖ ≤ tolerance · ‖∇F(θs)‖: an unconverged response is
    not the PBRF response, and no LDS is computed from it. The stored solves are kept (resumable)."""
    failed = [r for r in records if not r.get("converged")]
    if failed:
        worst = max(float(r.get("relative_grad_norm", np.inf)) for r in failed)
        raise UserInputError(
            f"{where}: {len(failed)} of {len(records)} PBRF solves did not converge (largest ‖∇F‖/‖∇F(θs)‖ "
            f"{worst:.3g} > --tolerance {tolerance:g} after {failed[0].get('iterations')} conjugate-gradient "
            "iterations); raise --max-iterations and run again (converged sets are kept)")


def linearity_record(number: int, one: dict, two: dict) -> dict:
    """Δ(2ε) against 2 Δ(ε) over the queries of one set: the least-squares slope β of Δ(2ε) on Δ(ε) (2 when
    linear), |β/2 − 1| as the error, and the Pearson correlation."""
    a, b = np.asarray(one["delta"], np.float64), np.asarray(two["delta"], np.float64)
    slope = float(a @ b / (a @ a)) if (a @ a) > 0 else float("nan")
    return {"set": number, "slope": slope, "relative_error": abs(slope / 2 - 1),
            "pearson": float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")}


def calibrate(plan, solver: "Solver", tolerance: float, halvings: int) -> dict:
    """--epsilon auto: a probe solve at PROBE_EPSILON, ε rescaled so that the pilot set's median |Δ| is --target
    (the response is linear in ε for small ε), then halved until Δ(2ε) ≈ 2 Δ(ε) on the pilot set. A given ε is
    checked the same way (recorded, not changed). The run's scores are not used: ε does not favour any method."""
    pilot, options = plan.sets[0], plan.options
    tried = []
    if options.epsilon == "auto":
        probe = solver.solve(pilot, PROBE_EPSILON)
        require_converged([probe], options.tolerance, "--epsilon auto (probe)")
        scale = float(np.median(np.abs(probe["delta"])))
        if not scale > 0:
            raise UserInputError("--epsilon auto: the pilot set does not move any query's log p; pass --epsilon")
        epsilon = PROBE_EPSILON * options.target / scale
        tried.append({"epsilon": PROBE_EPSILON, "median_abs_delta": scale, "probe": True})
    else:
        epsilon = float(options.epsilon)
    for _ in range(halvings + 1):
        one, two = solver.solve(pilot, epsilon), solver.solve(pilot, 2 * epsilon)
        require_converged([one, two], options.tolerance, "--epsilon (pilot set)")
        record = linearity_record(0, one, two)
        tried.append({"epsilon": epsilon, **record, "median_abs_delta": float(np.median(np.abs(one["delta"])))})
        if options.epsilon != "auto" or record["relative_error"] <= tolerance:
            break
        epsilon /= 2.0
    plan.store.write(plan.store.set_path(0), one)
    log.info("epsilon %.4g (%s): pilot median |Δ| %.3g nats, Δ(2ε) = %.3f Δ(ε)", epsilon, options.epsilon,
             tried[-1]["median_abs_delta"], tried[-1]["slope"])
    return {"mode": "auto" if options.epsilon == "auto" else "given", "epsilon": epsilon, "target": options.target,
            "tolerance": tolerance, "linear": tried[-1]["relative_error"] <= tolerance, "tried": tried}


class Solver:
    """The run's model (in --dtype), its tracked parameters and damping, the anchors and queries tokenized."""

    def __init__(self, plan, model, tokenizer, tracked):
        import torch
        from engine.pbrf import PBRFArguments, ProximalResponse, float64_norms
        from engine.tailpatch import module_parameters

        dtype = torch.float64 if plan.options.dtype == "float64" else torch.float32
        names = list(tracked)
        model = copy.deepcopy(model).to(dtype)
        float64_norms(model)                  # the copy's norms in float64 too (engine.pbrf.float64_norms)
        named = dict(model.named_modules())
        parameters = module_parameters({n: named[n] for n in names})
        damping = {name: plan.damping[name.rsplit(".", 1)[0]] for name in parameters}
        settings = Settings.from_manifest(plan.run.manifest)
        self.max_length = settings.max_length
        self.tokenizer, self.texts, self.plan = tokenizer, plan.run.document_texts(), plan
        queries = plan.run.queries
        query_tokens = measured_query_tokens(tokenizer, queries["prompt"].astype(str).tolist(),   # as the run measured
                                             queries["completion"].astype(str).tolist(), answers_of(queries),
                                             self.max_length, settings.measurement)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.response = ProximalResponse(model, parameters, damping, self.tokenized(plan.anchors), query_tokens,
                                         batch_size=plan.options.batch_size, pad_id=pad)
        self.arguments = PBRFArguments(max_iterations=plan.options.max_iterations, tolerance=plan.options.tolerance)
        self.threads = torch.get_num_threads()

    @classmethod
    def open(cls, plan, session=None) -> "Solver":
        from precompute.validation.patch import load_run_model
        if session is not None:
            return cls(plan, session.model, session.tokenizer, {n: session.tracked[n] for n in plan.run.layers})
        return cls(plan, *load_run_model(plan))

    def tokenized(self, columns) -> list:
        from engine.batches import tokenize_documents
        texts = self.texts.iloc[[int(c) for c in columns]].astype(str).tolist()
        return tokenize_documents(self.tokenizer, texts, self.max_length)

    def solve(self, columns, epsilon: float) -> dict:
        started = time.perf_counter()
        result = self.response.respond(self.tokenized(columns), epsilon, self.arguments)
        return {"delta": [float(v) for v in result.delta_logprob], "epsilon": epsilon,
                "iterations": result.iterations, "newton_steps": result.newton_steps,
                "max_iterations": self.arguments.max_iterations,
                "converged": bool(result.relative_grad_norm <= self.arguments.tolerance),
                "initial_grad_norm": result.initial_grad_norm, "final_grad_norm": result.final_grad_norm,
                "relative_grad_norm": result.relative_grad_norm, "kl": result.kl, "proximal": result.proximal,
                "seconds": round(time.perf_counter() - started, 2)}
