"""The damped Gauss-Newton system the PBRF solver needs, and how it is solved: exact products, EK-FAC, CG.

    M = Σ_groups w_g Σ_{d∈g} Σ_t J_tᵀ (diag p_t − p_t p_tᵀ) J_t  +  Λ          (Λ: λ_l on module l's parameters)

J_t = ∂z_t/∂θ is the Jacobian of the logits at position t over the chosen parameters, p_t = softmax(z_t). For the
PBRF (engine.pbrf) the groups are the anchors (w = 1/|H|: at θs exactly the Hessian of their mean KL) and the
set (w = ε: the Gauss-Newton part of ε Σ L_d; measured on the tiny test model, Newton with it converged faster
than with the set's exact Hessian, 30-180× per step). One product M v is exact and matrix-free: a forward pass carrying the tangent
J v (forward-mode AD; attention must be "eager", SDPA on CPU has no forward derivative), the softmax Hessian
applied per position, u = p ⊙ (Jv − pᵀJv), and one backward pass, Jᵀ u. About 1.5 training steps of the groups.

The system is solved by preconditioned conjugate gradients to a stated relative residual ‖r‖/‖b‖; the
preconditioner is an EK-FAC fitted on the anchors themselves (engine.factors, sampled Fisher), so the solution
depends on it only through the residual left, and never on the run's own factors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as forward_ad
from torch import nn
from torch.func import functional_call

from engine.batches import IGNORE, Batch
from engine.distributed import Grid
from engine.errors import EngineInputError
from engine.factors import A_VECS, LAMBDA, FactorArguments, fit_factors
from engine.model import is_conv1d, linear_types
from engine.precondition import eigen_precondition

Vector = list[torch.Tensor]          # one tensor per chosen parameter, float64


class GaussNewton:
    """M v for the model's chosen parameters (by qualified name) at their current values."""

    def __init__(self, model: nn.Module, parameters: dict[str, nn.Parameter], damping: list[float]):
        self.model, self.names = model, list(parameters)
        self.parameters = [parameters[name] for name in self.names]
        self.damping = list(damping)

    def product(self, vector: Vector, groups: list[tuple[list[Batch], float]]) -> Vector:
        """(Σ_groups w_g G_g + Λ) v at the parameters' current values."""
        device = self.parameters[0].device
        out = [torch.zeros_like(v) for v in vector]
        for batches, weight in groups:
            for batch in batches:
                for total, part in zip(out, self._batch_product(vector, batch.to(device), weight)):
                    total.add_(part.to(total.dtype))
        return [total + lam * v for total, lam, v in zip(out, self.damping, vector)]

    def _batch_product(self, vector: Vector, batch: Batch, weight: float) -> tuple[torch.Tensor, ...]:
        with forward_ad.dual_level():
            duals = {name: forward_ad.make_dual(p, v.to(p.dtype))
                     for name, p, v in zip(self.names, self.parameters, vector)}
            output = functional_call(self.model, duals, (),
                                     {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}).logits
            logits, tangent = forward_ad.unpack_dual(output)
        targets = batch.labels != IGNORE
        p = torch.softmax(logits[targets].double(), dim=-1)
        jv = tangent[targets].double()
        u = torch.zeros_like(logits)
        u[targets] = (weight * p * (jv - (p * jv).sum(-1, keepdim=True))).to(logits.dtype)
        return torch.autograd.grad(logits, self.parameters, u, allow_unused=True, materialize_grads=True)


class AnchorPreconditioner:
    """P⁻¹ r per module: Q_S [(Q_Sᵀ R Q_A) ⊘ (Λ + λ)] Q_Aᵀ with EK-FAC factors fitted on the anchor batches, R the
    module's weight (and bias) residual in the engine's [d_out, d_in(+1)] layout. Parameters of modules that are
    not linear layers get 1/λ."""

    def __init__(self, model: nn.Module, parameters: dict[str, nn.Parameter], damping: list[float],
                 anchors: list[Batch], seed: int = 0):
        self.names, self.damping = list(parameters), list(damping)
        named = dict(model.named_modules())
        self.modules: dict[str, dict[str, int]] = {}            # module -> {"weight": index, "bias": index}
        for index, name in enumerate(self.names):
            module_name, kind = name.rsplit(".", 1)
            if isinstance(named.get(module_name), linear_types()) and kind in ("weight", "bias"):
                self.modules.setdefault(module_name, {})[kind] = index
        self.modules = {m: kinds for m, kinds in self.modules.items() if "weight" in kinds}
        self.conv1d = {m for m in self.modules if is_conv1d(named[m])}
        tracked = {m: named[m] for m in self.modules}
        self.factors = fit_factors(model, tracked, anchors, FactorArguments("ekfac", "sampled", seed), progress=False,
                                   grid=Grid(0, 1)).tensors if tracked else {}
        self.factors = {m: {k: t.double() for k, t in f.items()} for m, f in self.factors.items()}

    def apply(self, residual: Vector) -> Vector:
        out = [r / lam for r, lam in zip(residual, self.damping)]
        for module, kinds in self.modules.items():
            weight = residual[kinds["weight"]]
            gradient = weight.t() if module in self.conv1d else weight
            if "bias" in kinds:
                gradient = torch.cat([gradient, residual[kinds["bias"]].unsqueeze(1)], dim=1)
            f = self.factors[module]
            lam = self.damping[kinds["weight"]]
            solved = eigen_precondition(gradient.double().unsqueeze(0), f, f[LAMBDA], lam)[0]
            d_in = f[A_VECS].shape[0] - (1 if "bias" in kinds else 0)
            out[kinds["weight"]] = solved[:, :d_in].t() if module in self.conv1d else solved[:, :d_in]
            if "bias" in kinds:
                out[kinds["bias"]] = solved[:, d_in]
        return out


@dataclass
class CGResult:
    solution: Vector
    iterations: int
    relative_residual: float        # ‖b − M x‖ / ‖b‖ by the recurrence (exact arithmetic: the true residual)


def conjugate_gradients(apply, precondition, rhs: Vector, tolerance: float, max_iterations: int) -> CGResult:
    """Solve M x = b (M symmetric positive definite, given as `apply`) by preconditioned CG from x = 0.

    r = b − M x, z = P⁻¹ r, p = z + β p;  α = rᵀz / pᵀMp,  x += α p,  r −= α M p,  β = r'ᵀz' / rᵀz."""
    norm_b = vector_norm(rhs)
    x = [torch.zeros_like(b) for b in rhs]
    if norm_b == 0:
        return CGResult(x, 0, 0.0)
    r = [b.clone() for b in rhs]                     # (raises if pᵀMp ≤ 0: M is not positive definite)
    z = precondition(r)
    direction = [t.clone() for t in z]
    rz = _dot(r, z)
    residual, iterations = 1.0, 0
    while residual > tolerance and iterations < max_iterations:
        m_direction = apply(direction)
        curvature = _dot(direction, m_direction)
        if not curvature > 0:
            raise EngineInputError(f"the damped system is not positive definite (pᵀMp = {curvature:.3g} after "
                                   f"{iterations} iterations): lower epsilon")
        alpha = rz / curvature
        for xi, ri, di, mi in zip(x, r, direction, m_direction):
            xi.add_(di, alpha=alpha)
            ri.sub_(mi, alpha=alpha)
        iterations += 1
        residual = vector_norm(r) / norm_b
        z = precondition(r)
        rz, previous = _dot(r, z), rz
        direction = [zi + (rz / previous) * di for zi, di in zip(z, direction)]
    return CGResult(x, iterations, residual)


def _dot(a: Vector, b: Vector) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def vector_norm(a: Vector) -> float:
    """‖a‖ over all its tensors together."""
    return math.sqrt(_dot(a, a))
