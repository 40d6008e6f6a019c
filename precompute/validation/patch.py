"""The torch side of `validate`: the run's model loaded once, queries and documents tokenized as in scoring,
and engine.tailpatch driven by query ids and document columns."""
from __future__ import annotations

import logging

import numpy as np

from precompute.pipeline.measurement import answers_of, measured_query_tokens
from precompute.pipeline.settings import Settings
from precompute.rundir.errors import UserInputError

log = logging.getLogger("precompute.validation.command")
LINEARITY_TOLERANCE = 0.1     # --lr auto: measured Δ within 10% (median) of the first-order prediction
MAX_HALVINGS = 6
PROBE_GRADIENT_BYTES = 2**30  # --lr auto keeps the probe sets' gradients in memory up to this (else recomputes them)


def load_run_model(plan):
    """(model, tokenizer, tracked modules) of the run (pipeline.run_model.open_run_session), or one UserInputError
    line."""
    from precompute.pipeline.run_model import open_run_session

    session, _ = open_run_session(str(plan.run.path), plan.run.manifest, list(plan.run.layers), plan.options.model,
                                  plan.options.device)
    return session.model, session.tokenizer, session.tracked


class Patcher:
    """Tail-patches by document column and measures by query id (log-probs before patching computed once)."""

    def __init__(self, plan, model, tokenizer, tracked):
        from engine.tailpatch import TailPatch, all_parameters, module_parameters

        self.plan, self.tokenizer = plan, tokenizer
        settings = Settings.from_manifest(plan.run.manifest)
        self.max_length = settings.max_length
        parameters = module_parameters(tracked) if plan.options.params == "tracked" else all_parameters(model)
        self.patch = TailPatch(model, parameters, batch_size=plan.options.batch_size,
                               pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        queries = plan.run.queries.set_index("id").loc[plan.query_ids]
        tokens = measured_query_tokens(tokenizer, queries["prompt"].astype(str).tolist(),       # what the run measured
                                       queries["completion"].astype(str).tolist(), answers_of(queries),
                                       self.max_length, settings.measurement)
        self.queries = dict(zip(plan.query_ids, tokens))
        self.documents: dict[int, object] = {}
        self.measured: dict[tuple, tuple] = {}   # the same set at the same lr is patched once (calibration's probe
                                                 # sets are the run's own top/bottom sets, validated again later)
        before = self.patch.completion_logprobs(tokens)
        self.before = dict(zip(plan.query_ids, before))

    @classmethod
    def open(cls, plan, session=None) -> "Patcher":
        if session is not None:
            return cls(plan, session.model, session.tokenizer, {n: session.tracked[n] for n in plan.run.layers})
        return cls(plan, *load_run_model(plan))

    def before_total(self, query_id: str) -> float:
        return float(self.before[query_id].sum())

    def tokenized(self, columns) -> list:
        from engine.batches import tokenize_documents

        todo = [int(c) for c in columns if int(c) not in self.documents]
        if todo:
            texts = self.plan.texts.iloc[todo].astype(str).tolist()
            self.documents.update(zip(todo, tokenize_documents(self.tokenizer, texts, self.max_length)))
        return [self.documents[int(c)] for c in columns]

    def deltas(self, query_ids: list[str], columns, lr: float, steps: int, gradient=None):
        """(TailPatchResult per query, total tokens of the set) after `steps` SGD steps on the documents; a repeated
        request returns the first result (deterministic on a CPU: the same numbers; on a GPU equal to rounding)."""
        key = (tuple(query_ids), tuple(int(c) for c in columns), float(lr), int(steps))
        if key not in self.measured:
            documents = self.tokenized(columns)
            results = self.patch.deltas([self.queries[q] for q in query_ids], documents, lr, steps,
                                        [self.before[q] for q in query_ids], gradient)
            self.measured[key] = (results, sum(len(d.input_ids) for d in documents))
        return self.measured[key]

    def probe_gradients(self, probe: list[tuple[str, np.ndarray]]) -> dict:
        """(query, columns) -> the set's gradient at the unpatched parameters, taken once for the first-order slope
        and every lr tried; {} when holding them all would take more than PROBE_GRADIENT_BYTES."""
        size = sum(p.numel() * p.element_size() for p in self.patch.parameters)
        if size * len(probe) > PROBE_GRADIENT_BYTES:
            return {}
        return {(q, tuple(columns)): self.patch.set_gradient(self.tokenized(columns)) for q, columns in probe}

    def calibrate(self, probe: list[tuple[str, np.ndarray]], steps: int, target: float,
                  tolerance: float = LINEARITY_TOLERANCE, halvings: int = MAX_HALVINGS) -> dict:
        """One lr for the run: the first-order Δ = steps · lr · ⟨∇ log p, −∇L_set⟩ of the probe (query, document
        set) pairs — the run's own top- and bottom-k sets, the sets with the largest gradients — has a median
        |Δ| of `target` nats; then lr is halved until the measured Δ is within `tolerance` (median relative
        error) of that first-order prediction: every compared set is then in the first-order regime."""
        gradients, slopes = self.probe_gradients(probe), []
        for q, columns in probe:
            documents, gradient = self.tokenized(columns), gradients.get((q, tuple(columns)))
            slopes.append(float(self.patch.first_order([self.queries[q]], documents, gradient)[0]))
        slopes = np.array(slopes)
        scale = float(np.median(np.abs(slopes)))
        if not scale > 0:
            raise UserInputError("--lr auto: the probe sets do not move the queries' log-probs; pass --lr")
        lr, tried = target / (steps * scale), []
        for _ in range(halvings + 1):
            measured = np.array([self.deltas([q], columns, lr, steps, gradients.get((q, tuple(columns))))[0][0]
                                 .delta_logprob for q, columns in probe])
            predicted = steps * lr * slopes
            error = float(np.median(np.abs(measured - predicted) / np.maximum(np.abs(predicted), 1e-12)))
            tried.append({"lr": lr, "linearity_error": error})
            if error <= tolerance:
                break
            lr /= 2.0
        log.info("--lr auto: lr %.4g (first-order |Δ| of the probe sets: median %.3g nats; measured vs first order: "
                 "median relative error %.3f)", lr, steps * lr * scale, error)
        return {"mode": "auto", "lr": lr, "target": target, "tolerance": tolerance,
                "median_first_order_slope": scale, "linearity_error": error, "tried": tried,
                "probe_queries": list(dict.fromkeys(q for q, _ in probe))}
