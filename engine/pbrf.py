"""The proximal Bregman response function (PBRF; Bae et al. 2022): what damped influence functions estimate.

Up-weighting a document set S by ε, with θs the model's parameters (the tracked modules' weights and biases):

    θ_ε = argmin_θ  K(θ) + ε Σ_{d∈S} L_d(θ) + Σ_l (λ_l / 2) ‖θ_l − θs_l‖²
    K(θ) = mean_{d∈H} Σ_t KL( p_θs(· | d, <t) ‖ p_θ(· | d, <t) )

over a fixed set H of anchor documents, L_d the summed-token NLL the engine differentiates, λ_l the damping
the run used for module l. At θs, K has gradient 0 and Hessian G = mean_d Σ_t Jᵀ (diag p − p pᵀ) J (the model's
Fisher / Gauss-Newton matrix on H, exactly: the second-derivative term of the network meets p_θ − p_θs = 0).
So to first order θ_ε − θs = −ε (G + λ)⁻¹ Σ_{d∈S} ∇L_d, and

    Δ log p(completion | prompt) ≈ ε Σ_{d∈S} ∇log p_qᵀ (G + λ)⁻¹ (−∇L_d) = ε Σ_{d∈S} score(q, d)

with the damped-Fisher influence score (EK-FAC approximates G per module). The response is measured here by
solving the objective with full-batch L-BFGS (strong-Wolfe line search) from θs and re-measuring log p.

The model is used in place: the chosen parameters are restored after every response (engine.tailpatch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.batches import IGNORE, Tokenized, make_batches
from engine.errors import EngineInputError
from engine.hooks import token_nll
from engine.tailpatch import TailPatch


@dataclass(frozen=True)
class PBRFArguments:
    max_iterations: int = 50        # L-BFGS iterations (each one or more objective evaluations)
    relative_tolerance: float = 1e-5   # stop when max |∇F| ≤ this × max |∇F(θs)| = ε max |∇L_S|
    history: int = 20               # L-BFGS memory


@dataclass
class PBRFResponse:
    delta_logprob: torch.Tensor     # [Q] Δ Σ_t log p(completion token t | prefix), float64
    iterations: int
    evaluations: int
    initial_grad_norm: float        # ‖∇F(θs)‖ = ε ‖Σ_{d∈S} ∇L_d‖ over the chosen parameters
    final_grad_norm: float          # ‖∇F(θ_ε)‖: how far from the optimum the solver stopped
    kl: float                       # K(θ_ε)
    proximal: float                 # Σ_l λ_l/2 ‖θ_l − θs_l‖² at θ_ε

    @property
    def relative_grad_norm(self) -> float:
        return self.final_grad_norm / self.initial_grad_norm if self.initial_grad_norm > 0 else math.nan


class ProximalResponse:
    """PBRF responses of one model to many document sets, measured on fixed queries.

    `damping` gives λ per chosen parameter name (e.g. every parameter of a tracked module gets the module's λ).
    The anchors' reference distributions p_θs are computed once (kept on the model's device)."""

    def __init__(self, model: nn.Module, parameters: dict[str, nn.Parameter], damping: dict[str, float],
                 anchors: list[Tokenized], queries: list[Tokenized], batch_size: int = 16, pad_id: int = 0):
        missing = [name for name in parameters if name not in damping]
        if missing:
            raise EngineInputError(f"no damping given for parameter {missing[0]!r}")
        if not anchors:
            raise EngineInputError("PBRF needs at least one anchor document")
        self.patch = TailPatch(model, parameters, batch_size=batch_size, pad_id=pad_id)
        self.damping = [float(damping[name]) for name in self.patch.names]
        self.batch_size, self.pad_id = batch_size, int(pad_id)
        self.anchor_batches = list(make_batches(_by_length(anchors), batch_size, self.pad_id))
        self.n_anchors = len(anchors)
        self.reference = [self._log_probs(batch).detach() for batch in self.anchor_batches]
        self.queries = queries
        self.before = torch.stack([lp.sum() for lp in self.patch.completion_logprobs(queries)])

    def _log_probs(self, batch) -> torch.Tensor:
        """log p over the vocabulary at every position with a target: [n positions, V]."""
        batch = batch.to(self.patch.device)
        logits = self.patch.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        return F.log_softmax(logits[batch.labels != IGNORE].to(_work_dtype(logits)), dim=-1)

    def objective(self, set_batches: list, epsilon: float, backward: bool = True) -> tuple[float, float, float]:
        """F(θ) at the current parameters, accumulating ∇F into .grad when `backward`: (F, K, proximal)."""
        kl_total = 0.0
        for batch, reference in zip(self.anchor_batches, self.reference):
            log_q = self._log_probs(batch)
            kl = (reference.exp() * (reference - log_q)).sum() / self.n_anchors
            if backward:
                kl.backward()
            kl_total += float(kl.detach())
        set_total = 0.0
        for batch in set_batches:
            batch = batch.to(self.patch.device)
            logits = self.patch.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            loss = epsilon * token_nll(logits, batch.labels).sum()
            if backward:
                loss.backward()
            set_total += float(loss.detach())
        proximal = sum(0.5 * lam * (p - p0).to(torch.float64).square().sum()
                       for lam, p, p0 in zip(self.damping, self.patch.parameters, self.patch.saved))
        if backward and torch.is_tensor(proximal):
            proximal.backward()
        proximal = float(proximal.detach()) if torch.is_tensor(proximal) else float(proximal)
        return kl_total + set_total + proximal, kl_total, proximal

    def _gradient_norms(self) -> tuple[float, float]:
        grads = [p.grad for p in self.patch.parameters if p.grad is not None]
        if not grads:
            return 0.0, 0.0
        return (math.sqrt(sum(float(g.double().square().sum()) for g in grads)),
                max(float(g.abs().max()) for g in grads))

    def respond(self, documents: list[Tokenized], epsilon: float,
                args: PBRFArguments = PBRFArguments()) -> PBRFResponse:
        """Solve the PBRF objective for the set `documents` at weight ε; Δ log p of every query; restore θs."""
        if not documents:
            raise EngineInputError("a PBRF response needs at least one document")
        if not epsilon > 0:
            raise EngineInputError(f"epsilon must be positive, got {epsilon}")
        set_batches = list(make_batches(_by_length(documents), self.batch_size, self.pad_id))
        model, was_training = self.patch.model, self.patch.model.training
        model.eval()
        evaluations = [0]
        try:
            with self.patch.trainable(), torch.enable_grad():
                self._zero_grad()
                self.objective(set_batches, epsilon)
                initial_norm, initial_max = self._gradient_norms()
                tolerance = args.relative_tolerance * initial_max

                def closure():
                    evaluations[0] += 1
                    self._zero_grad()
                    value, _, _ = self.objective(set_batches, epsilon)
                    return torch.tensor(value, dtype=torch.float64)

                solver = torch.optim.LBFGS(self.patch.parameters, lr=1.0, max_iter=args.max_iterations,
                                           tolerance_grad=tolerance, tolerance_change=0.0,
                                           history_size=args.history, line_search_fn="strong_wolfe")
                solver.step(closure)         # stops early when the objective's rounding noise stalls the search
                iterations = int(solver.state[solver._params[0]].get("n_iter", 0))
                self._zero_grad()
                _, kl, proximal = self.objective(set_batches, epsilon)
                final_norm, _ = self._gradient_norms()
                self._zero_grad()
            after = torch.stack([lp.sum() for lp in self.patch.completion_logprobs(self.queries)])
        finally:
            for p in self.patch.parameters:
                p.grad = None
            self.patch.restore()
            model.train(was_training)
        return PBRFResponse((after - self.before).to(torch.float64).cpu(), iterations, evaluations[0],
                            initial_norm, final_norm, kl, proximal)

    def _zero_grad(self) -> None:
        for p in self.patch.parameters:
            p.grad = None


def float64_norms(model: nn.Module) -> int:
    """Make RMSNorm layers of a float64 model compute in float64 (Hugging Face's Llama-style RMSNorm casts its
    input to float32, which puts θ-dependent rounding noise of ~1e-8 on the objective and stalls the line search
    long before convergence). Patches the instances of `model` only; returns how many were patched."""
    if next(model.parameters()).dtype != torch.float64:
        return 0
    patched = 0
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon"):
            module.forward = _rms_norm_forward.__get__(module)
            patched += 1
    return patched


def _rms_norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _by_length(items: list[Tokenized]) -> list[Tokenized]:
    """Length-sorted, so padded batches waste little."""
    return sorted(items, key=lambda item: len(item.input_ids))


def _work_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32
