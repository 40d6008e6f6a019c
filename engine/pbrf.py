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
solving the objective with Newton's method from θs and re-measuring log p. Each step solves
M Δ = −∇F(θ) with M = G(θ) + ε G_S(θ) + λ (the Gauss-Newton matrices of the anchors and of the set at the
current θ: exact, matrix-free products, engine.gauss_newton) by preconditioned conjugate gradients to a
stated residual, then backtracks until F decreases; steps repeat until ‖∇F‖ ≤ tolerance · ‖∇F(θs)‖. The first step alone is the first-order response; the next ones add what
is not linear in ε. (Plain L-BFGS could not do this: with λ five orders of magnitude below G's largest
eigenvalues it stalled far from the optimum, and its first step is the identity-influence direction, so an
unconverged answer leans towards that method.)

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
from engine.gauss_newton import AnchorPreconditioner, GaussNewton, conjugate_gradients, vector_norm
from engine.hooks import token_nll
from engine.tailpatch import TailPatch

MAX_HALVINGS = 8          # Newton's step length: 1 down to 2⁻⁷ until the objective decreases


@dataclass(frozen=True)
class PBRFArguments:
    max_iterations: int = 500       # conjugate-gradient iterations per Newton step (one Gauss-Newton product each)
    tolerance: float = 1e-4         # converged when ‖∇F(θ)‖ ≤ this × ‖∇F(θs)‖ = ε ‖Σ_{d∈S} ∇L_d‖
    newton_steps: int = 8           # each reduced ‖∇F‖ 20-180× on the tiny test model (linear: Gauss-Newton)


@dataclass
class PBRFResponse:
    delta_logprob: torch.Tensor     # [Q] Δ Σ_t log p(completion token t | prefix), float64
    iterations: int                 # conjugate-gradient iterations (Gauss-Newton products), all Newton steps
    newton_steps: int
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
    The anchors' reference distributions p_θs and the preconditioner (an EK-FAC fitted on the anchors) are
    computed once. The model's attention is switched to eager attention computed in the model's dtype
    (use_attention_in_model_dtype)."""

    def __init__(self, model: nn.Module, parameters: dict[str, nn.Parameter], damping: dict[str, float],
                 anchors: list[Tokenized], queries: list[Tokenized], batch_size: int = 16, pad_id: int = 0,
                 preconditioner_seed: int = 0):
        missing = [name for name in parameters if name not in damping]
        if missing:
            raise EngineInputError(f"no damping given for parameter {missing[0]!r}")
        if not anchors:
            raise EngineInputError("PBRF needs at least one anchor document")
        use_attention_in_model_dtype(model)         # forward-mode AD (engine.gauss_newton) needs eager attention
        self.patch = TailPatch(model, parameters, batch_size=batch_size, pad_id=pad_id)
        self.damping = [float(damping[name]) for name in self.patch.names]
        self.batch_size, self.pad_id = batch_size, int(pad_id)
        self.anchor_batches = list(make_batches(_by_length(anchors), batch_size, self.pad_id))
        self.n_anchors = len(anchors)
        with torch.no_grad():
            self.reference = [self._log_probs(batch) for batch in self.anchor_batches]
        chosen = dict(zip(self.patch.names, self.patch.parameters))
        self.curvature = GaussNewton(model, chosen, self.damping)
        self.preconditioner = AnchorPreconditioner(model, chosen, self.damping, self.anchor_batches,
                                                   seed=preconditioner_seed)
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

    def respond(self, documents: list[Tokenized], epsilon: float,
                args: PBRFArguments = PBRFArguments()) -> PBRFResponse:
        """Solve the PBRF objective for the set `documents` at weight ε; Δ log p of every query; restore θs."""
        if not documents:
            raise EngineInputError("a PBRF response needs at least one document")
        if not epsilon > 0:
            raise EngineInputError(f"epsilon must be positive, got {epsilon}")
        set_batches = list(make_batches(_by_length(documents), self.batch_size, self.pad_id))
        groups = [(self.anchor_batches, 1.0 / self.n_anchors), (set_batches, epsilon)]
        model, was_training = self.patch.model, self.patch.model.training
        model.eval()
        try:
            with self.patch.trainable(), torch.enable_grad():
                values, gradient = self._gradient(set_batches, epsilon)
                initial = vector_norm(gradient)
                norm, steps, iterations = initial, 0, 0
                while steps < args.newton_steps and norm > args.tolerance * initial:
                    # the linear solve need only reach (a tenth of) the tolerance left for this step
                    cg_tolerance = min(0.1, 0.1 * args.tolerance * initial / norm)
                    result = conjugate_gradients(lambda v: self.curvature.product(v, groups),
                                                 self.preconditioner.apply, gradient, cg_tolerance,
                                                 args.max_iterations)
                    self._line_search(result.solution, values[0], set_batches, epsilon)
                    values, gradient = self._gradient(set_batches, epsilon)
                    norm, steps, iterations = vector_norm(gradient), steps + 1, iterations + result.iterations
                _, kl, proximal = values
            after = torch.stack([lp.sum() for lp in self.patch.completion_logprobs(self.queries)])
        finally:
            self._zero_grad()
            self.patch.restore()
            model.train(was_training)
        return PBRFResponse((after - self.before).to(torch.float64).cpu(), iterations, steps,
                            initial, norm, kl, proximal)

    @torch.no_grad()
    def _line_search(self, step: list[torch.Tensor], before: float, set_batches: list, epsilon: float) -> None:
        """θ ← θ − t·step with t = 1, ½, ¼, ... (at most MAX_HALVINGS) until F falls below `before` (F at the
        current θ): far from the linear regime (ε too large for the damping) a full Gauss-Newton step can
        overshoot."""
        start = [p.detach().clone() for p in self.patch.parameters]
        t = 1.0
        for _ in range(MAX_HALVINGS):
            for p, p0, d in zip(self.patch.parameters, start, step):
                p.copy_(p0 - t * d.to(p.dtype))
            if self.objective(set_batches, epsilon, backward=False)[0] < before:
                break
            t /= 2

    def _gradient(self, set_batches: list, epsilon: float) -> tuple[tuple[float, float, float], list[torch.Tensor]]:
        """(F, K, proximal) and ∇F at the current parameters (float64, one tensor per chosen parameter)."""
        self._zero_grad()
        values = self.objective(set_batches, epsilon)
        gradient = [p.grad.double() if p.grad is not None else torch.zeros_like(p, dtype=torch.float64)
                    for p in self.patch.parameters]
        self._zero_grad()
        return values, gradient

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


ATTENTION_IN_MODEL_DTYPE = "eager_in_model_dtype"


def use_attention_in_model_dtype(model: nn.Module) -> bool:
    """Switch a Hugging Face model to eager attention whose softmax runs in the model's dtype. Forward-mode AD
    needs eager attention (SDPA on CPU has no forward derivative); Hugging Face's eager softmax runs in float32,
    whose rounding (~1e-7) left a floor on ‖∇F‖ of a float64 solve. Returns False for a model without the switch."""
    if not hasattr(model, "set_attn_implementation"):
        return False
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION_IN_MODEL_DTYPE, _attention_in_model_dtype)
    AttentionMaskInterface.register(ATTENTION_IN_MODEL_DTYPE, eager_mask)     # the causal + padding mask of eager
    model.set_attn_implementation(ATTENTION_IN_MODEL_DTYPE)
    return True


def _attention_in_model_dtype(module, query, key, value, attention_mask, scaling, dropout=0.0, **_):
    """softmax(q kᵀ · scaling + mask) v per head, grouped key/value heads repeated; [B, T, heads, d] out."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:                        # boolean (True: attend) or additive, by the mask interface
        mask = attention_mask[:, :, :, : key.shape[-2]]
        weights = (weights.masked_fill(~mask, torch.finfo(weights.dtype).min) if mask.dtype == torch.bool
                   else weights + mask)
    weights = F.dropout(torch.softmax(weights, dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _rms_norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _by_length(items: list[Tokenized]) -> list[Tokenized]:
    """Length-sorted, so padded batches waste little."""
    return sorted(items, key=lambda item: len(item.input_ids))


def _work_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32
