"""Compressed document gradients for the ask index: per module Π_out G Π_inᵀ, computed per token.

For a tracked layer with G = Σ_t g_t a_tᵀ ([d_out, d_in']), the compressed gradient is
    Π_out G Π_inᵀ = Σ_t (Π_out g_t)(Π_in a_t)ᵀ        ([k_out, k_in])
so each token's g_t and a_t are projected before the outer product and G itself is never materialised.
A query is compressed the same way from its preconditioned gradient P(G_q) (dense, or U Vᵀ as
(Π_out U)(Π_in V)ᵀ), and the score ⟨P(G_q), G_d⟩ is estimated by the inner product of the two vectors.

Two choices of Π (the method):
- "gaussian": independent N(0, 1/k) entries, seeded per module. E[Π_outᵀ Π_out] = I and E[Π_inᵀ Π_in] = I with
  Π_out, Π_in independent, so the projected inner product is an unbiased estimate of ⟨P(G_q), G_d⟩.
- "eigen": rows of the factors' eigenbases Q_Sᵀ and Q_Aᵀ (kfac/ekfac only). The projected inner product is the
  exact score restricted to a block of the eigenbasis: Σ_(i,j in block) (Q_Sᵀ G_q Q_A)_ij (Q_Sᵀ G_d Q_A)_ij
  / (Λ_ij + λ) for full-rank queries. The block keeps the eigen-directions that carry most of the score's
  variance over documents, weighted (Λ/(Λ+λ))². With every direction kept it equals the full score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn

from engine.batches import Batch
from engine.errors import EngineInputError
from engine.factors import A_VALS, A_VECS, LAMBDA, S_VALS, S_VECS, Factors
from engine.precondition import PreconditionedQueries, choose_damping
from engine.seeds import derived_seed

METHODS = ("gaussian", "eigen")


@dataclass
class Projection:
    """Per module Π_out [k_out, d_out] and Π_in [k_in, d_in']; a document's vector is the concatenation of the
    flattened (row-major) [k_out, k_in] blocks in `modules` order."""
    method: str
    seed: int
    modules: list[str]
    outs: dict[str, torch.Tensor]
    ins: dict[str, torch.Tensor]

    def dims(self, name: str) -> tuple[int, int]:
        return self.outs[name].shape[0], self.ins[name].shape[0]

    @property
    def total_dim(self) -> int:
        return sum(k_out * k_in for k_out, k_in in map(self.dims, self.modules))

    def slices(self) -> dict[str, slice]:
        """Where each module's block lies in the concatenated vector."""
        out, start = {}, 0
        for name in self.modules:
            size = math.prod(self.dims(name))
            out[name] = slice(start, start + size)
            start += size
        return out

    def to(self, device, dtype) -> "Projection":
        return Projection(self.method, self.seed, self.modules,
                          {n: t.to(device=device, dtype=dtype) for n, t in self.outs.items()},
                          {n: t.to(device=device, dtype=dtype) for n, t in self.ins.items()})

    def tensors(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor map (for safetensors): '<module>/out' and '<module>/in'."""
        flat = {f"{n}/out": self.outs[n].contiguous() for n in self.modules}
        flat.update({f"{n}/in": self.ins[n].contiguous() for n in self.modules})
        return flat

    @classmethod
    def from_tensors(cls, method: str, seed: int, modules: list[str], flat: dict[str, torch.Tensor]) -> "Projection":
        missing = [n for n in modules if f"{n}/out" not in flat or f"{n}/in" not in flat]
        if missing:
            raise EngineInputError(f"projection has no matrices for module {missing[0]}")
        return cls(method, seed, list(modules), {n: flat[f"{n}/out"] for n in modules},
                   {n: flat[f"{n}/in"] for n in modules})

    def project_tokens(self, name: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """[B, k_out·k_in]: Σ_t (Π_out g_t)(Π_in a_t)ᵀ per document from a [B, T, d_in'] and g [B, T, d_out]."""
        projected_g = g @ self.outs[name].t()  # [B, T, k_out]
        projected_a = a @ self.ins[name].t()  # [B, T, k_in]
        return torch.bmm(projected_g.transpose(1, 2), projected_a).reshape(a.shape[0], -1)

    compress = project_tokens     # the per-batch interface shared with engine.lowrank.compress_documents

    def project_matrices(self, name: str, grads: torch.Tensor) -> torch.Tensor:
        """[N, k_out·k_in] from dense matrices [N, d_out, d_in']."""
        out, inp = self.outs[name].to(grads.dtype), self.ins[name].to(grads.dtype)
        return (out @ grads @ inp.t()).reshape(grads.shape[0], -1)

    def query_vectors(self, pq: PreconditionedQueries) -> torch.Tensor:
        """[Q, total_dim] float32: Π_out P(G_q) Π_inᵀ per module, with P = U Vᵀ projected as (Π_out U)(Π_in V)ᵀ."""
        if list(pq.modules) != list(self.modules):
            raise EngineInputError("the index was built for other modules than the queries were preconditioned on")
        blocks = []
        for name in self.modules:
            value = pq.gradients[name]
            if isinstance(value, tuple):
                u, v = value
                out, inp = self.outs[name].to(u.dtype), self.ins[name].to(u.dtype)
                block = torch.bmm(out @ u, (inp @ v).transpose(1, 2))  # [Q, k_out, k_in]
                blocks.append(block.reshape(u.shape[0], -1))
            else:
                blocks.append(self.project_matrices(name, value))
        return torch.cat(blocks, dim=1).float()


# ---------------------------------------------------------------- building projections

def module_dims(shapes: dict[str, tuple[int, int]], dim: int) -> dict[str, tuple[int, int]]:
    """Split a total dimension per document over the modules: equal shares (a module smaller than its share
    keeps its whole gradient and leaves the rest to the others), each a near-square block k_out × k_in capped at
    d_out × d_in' (a capped side gives its share to the other)."""
    if dim < len(shapes):
        raise EngineInputError(f"dim {dim} is smaller than the number of tracked modules ({len(shapes)})")
    budgets, left = {}, dim
    by_size = sorted(shapes, key=lambda n: math.prod(shapes[n]))
    for position, name in enumerate(by_size):
        budgets[name] = min(math.prod(shapes[name]), left // (len(by_size) - position))
        left -= budgets[name]
    dims = {}
    for name, (d_out, d_in) in shapes.items():
        budget = budgets[name]
        side = max(1, math.isqrt(budget))
        k_out, k_in = min(d_out, side), min(d_in, side)
        if k_out == d_out:
            k_in = min(d_in, max(1, budget // k_out))
        elif k_in == d_in:
            k_out = min(d_out, max(1, budget // k_in))
        dims[name] = (k_out, k_in)
    return dims


def gaussian_projection(shapes: dict[str, tuple[int, int]], dim: int, seed: int = 0) -> Projection:
    """Π entries N(0, 1/k): unbiased inner products (float32, on CPU)."""
    outs, ins = {}, {}
    for name, (k_out, k_in) in module_dims(shapes, dim).items():
        d_out, d_in = shapes[name]
        generator = torch.Generator().manual_seed(derived_seed(seed, name.encode()))   # per module
        outs[name] = torch.randn(k_out, d_out, generator=generator, dtype=torch.float64).div_(math.sqrt(k_out)).float()
        ins[name] = torch.randn(k_in, d_in, generator=generator, dtype=torch.float64).div_(math.sqrt(k_in)).float()
    return Projection("gaussian", seed, list(shapes), outs, ins)


def eigen_weights(f: dict, strategy: str, damping: str | float) -> torch.Tensor:
    """(Λ / (Λ + λ))² [d_out, d_in']: each eigen-coordinate's share of the score's variance over documents."""
    lam = f[LAMBDA] if strategy == "ekfac" else torch.outer(f[S_VALS], f[A_VALS])
    lam = lam.double().clamp_min(0)
    used = choose_damping(lam, damping)
    if used <= 0:
        return torch.ones_like(lam)
    return (lam / (lam + used)).square()


def eigen_projection(factors: Factors, dim: int, damping: str | float = "auto") -> Projection:
    """Π_out = rows of Q_Sᵀ, Π_in = rows of Q_Aᵀ: the eigen-directions with the largest weight sums (rows first,
    then columns within the kept rows)."""
    if factors.strategy not in ("ekfac", "kfac"):
        raise EngineInputError(f"method 'eigen' needs kfac or ekfac factors, the run's are {factors.strategy!r}")
    shapes = {name: tuple(factors.shapes[name]) for name in factors.modules}
    outs, ins = {}, {}
    for name, (k_out, k_in) in module_dims(shapes, dim).items():
        f = factors.tensors[name]
        weights = eigen_weights(f, factors.strategy, damping)
        rows = torch.argsort(weights.sum(dim=1), descending=True, stable=True)[:k_out]
        columns = torch.argsort(weights[rows].sum(dim=0), descending=True, stable=True)[:k_in]
        outs[name] = f[S_VECS][:, rows].t().float().contiguous()
        ins[name] = f[A_VECS][:, columns].t().float().contiguous()
    return Projection("eigen", 0, list(factors.modules), outs, ins)


def build_projection(method: str, factors: Factors, dim: int, seed: int = 0,
                     damping: str | float = "auto") -> Projection:
    if method == "gaussian":
        return gaussian_projection({n: tuple(factors.shapes[n]) for n in factors.modules}, dim, seed)
    if method == "eigen":
        return eigen_projection(factors, dim, damping)
    raise EngineInputError(f"unknown projection method {method!r} (choose from {', '.join(METHODS)})")


# ---------------------------------------------------------------- the document pass

def project_documents(model: nn.Module, tracked: dict[str, nn.Module], projection: Projection,
                      batches: Iterable[Batch], progress: bool = True) -> Iterator[tuple[list[int], torch.Tensor]]:
    """One forward+backward per batch; yields (batch.index, vectors [B, total_dim] float32 on CPU)."""
    from engine.lowrank import compress_documents

    for index, (vectors,) in compress_documents(model, tracked, [projection], batches, progress):
        yield index, vectors
