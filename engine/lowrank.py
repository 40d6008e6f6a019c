"""Per-document rank-R factors of the whitened gradient: the default compression of the ask index.

Per tracked module, with the factors' eigenbases Q_S, Q_A and eigenvalues s, a, let
    L = diag(w_s)^(-1/2) Q_Sᵀ,  R = diag(w_a)^(-1/2) Q_Aᵀ,  w_s = s + 0.1·mean(s),  w_a = a + 0.1·mean(a)
(Kronecker-factored whitening) and X_d = L G_d Rᵀ the document's whitened gradient. For any query,
    ⟨P(G_q), G_d⟩ = ⟨Y_q, X_d⟩  with  Y_q = L⁻ᵀ P(G_q) R⁻¹ = diag(√w_s) Q_Sᵀ P(G_q) Q_A diag(√w_a),
so the score is exact in whitened coordinates. The index keeps the best rank-R approximation of X_d, stored as
û_r = √σ_r u_r and v̂_r = √σ_r v_r, and estimates the score as Σ_r û_rᵀ Y_q v̂_r. Whitened document gradients have
a fast-decaying spectrum (on the demo model rank 4 keeps Pearson ≈ 0.95 with the full scores), unlike their
projections onto a few fixed directions (engine/projection.py), which lose much more at the same size.

X_d's rank-R factors come from a randomized range finder with power iterations, computed from the tokens' a_t
and g_t (products X Ω = L Σ_t g_t (a_tᵀ Rᵀ Ω) and Xᵀ Q = R Σ_t a_t (g_tᵀ Lᵀ Q)): G_d is never materialised.
With R + oversampling ≥ min(d_out, d_in') the factors are exact. Strategies without an eigenbasis (diagonal,
identity) use L = I, R = I.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from engine.batches import Batch
from engine.errors import EngineInputError
from engine.factors import A_VALS, A_VECS, S_VALS, S_VECS, Factors
from engine.hooks import document_capture, forward_backward, work_dtype
from engine.precondition import HEURISTIC_DAMPING, PreconditionedQueries
from engine.seeds import derived_seed
from engine.task import DEFAULT_TASK, Task

OVERSAMPLE = 4
QUERY_FACTOR_RANK = 8          # default rank kept of the whitened query Y_q (see query_factors); not scoring's
                               # query rank (QueryArguments.rank, which truncates P(G) itself)
POWER_ITERATIONS = 1           # 2 gives the same accuracy on the demo run (Pearson 0.942 vs 0.943) at 1.3x the cost


@dataclass
class LowRankWhitened:
    """Per module: whitening L [d_out, d_out], R [d_in', d_in'] (and their inverse-transposes for queries), the
    rank, and a seeded test matrix Ω [d_in', k]. A document's vector is, per module in `modules` order, its
    û_1..û_R ([R, d_out] row-major) then v̂_1..v̂_R ([R, d_in'])."""
    modules: list[str]
    rank: int
    seed: int
    left: dict[str, torch.Tensor]
    right: dict[str, torch.Tensor]
    left_query: dict[str, torch.Tensor]    # diag(√w_s) Q_Sᵀ
    right_query: dict[str, torch.Tensor]   # diag(√w_a) Q_Aᵀ
    omega: dict[str, torch.Tensor]
    query_factor_rank: int | None = QUERY_FACTOR_RANK

    method = "lowrank"

    def shape(self, name: str) -> tuple[int, int]:
        return self.left[name].shape[0], self.right[name].shape[0]

    def module_rank(self, name: str) -> int:
        return min(self.rank, *self.shape(name))

    @property
    def total_dim(self) -> int:
        return sum(self.module_rank(n) * sum(self.shape(n)) for n in self.modules)

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name in self.modules:
            size = self.module_rank(name) * sum(self.shape(name))
            out[name] = slice(start, start + size)
            start += size
        return out

    def to(self, device, dtype) -> "LowRankWhitened":
        move = lambda d: {n: t.to(device=device, dtype=dtype) for n, t in d.items()}  # noqa: E731
        return LowRankWhitened(self.modules, self.rank, self.seed, move(self.left), move(self.right),
                               move(self.left_query), move(self.right_query), move(self.omega), self.query_factor_rank)

    def tensors(self) -> dict[str, torch.Tensor]:
        flat = {}
        for part in ("left", "right", "left_query", "right_query", "omega"):
            flat.update({f"{n}/{part}": getattr(self, part)[n].contiguous() for n in self.modules})
        return flat

    @classmethod
    def from_tensors(cls, modules: list[str], rank: int, seed: int, flat: dict,
                     query_factor_rank: int | None = QUERY_FACTOR_RANK) -> "LowRankWhitened":
        parts = {}
        for part in ("left", "right", "left_query", "right_query", "omega"):
            missing = [n for n in modules if f"{n}/{part}" not in flat]
            if missing:
                raise EngineInputError(f"low-rank index has no {part} matrix for module {missing[0]}")
            parts[part] = {n: flat[f"{n}/{part}"] for n in modules}
        return cls(list(modules), rank, seed, **parts, query_factor_rank=query_factor_rank)

    def compress(self, name: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """[B, R·(d_out + d_in')]: û and v̂ of X_d = L (Σ_t g_t a_tᵀ) Rᵀ per document, from a [B,T,d_in'], g [B,T,d_out]."""
        left, right = self.left[name], self.right[name]
        r = self.module_rank(name)
        q = torch.linalg.qr(times(left, torch.bmm(g.transpose(1, 2), a @ self.omega[name]))).Q    # range of X Ω
        for _ in range(POWER_ITERATIONS):
            z = times(right, torch.bmm(a.transpose(1, 2), torch.bmm(g, times(left.t(), q))))     # Xᵀ Q
            q = torch.linalg.qr(times(left, torch.bmm(g.transpose(1, 2),
                                                      torch.bmm(a, times(right.t(), torch.linalg.qr(z).Q))))).Q
        small = times(right, torch.bmm(a.transpose(1, 2), torch.bmm(g, times(left.t(), q))))   # (Qᵀ X)ᵀ [B, d_in, k]
        u_small, sigma, vh = torch.linalg.svd(small.transpose(1, 2), full_matrices=False)
        root = sigma[:, :r].clamp_min(0).sqrt()
        u = torch.bmm(q, u_small[:, :, :r]) * root[:, None, :]                                  # [B, d_out, r]
        v = vh[:, :r, :] * root[:, :, None]                                                      # [B, r, d_in]
        return torch.cat([u.transpose(1, 2).reshape(len(a), -1), v.reshape(len(a), -1)], dim=1)

    def query_factors(self, pq: PreconditionedQueries) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per module Y_q ≈ Ŭ V̆ᵀ as (Ŭ [Q, d_out, r_q], V̆ [Q, d_in', r_q]) float32: from the low-rank (U, V) of the
        preconditioned queries, or from an SVD of dense ones; truncated to its best rank `query_factor_rank` (None:
        exact). Scoring every document costs 2·N·R·r_q·(d_out + d_in') per module."""
        if list(pq.modules) != list(self.modules):
            raise EngineInputError("the index was built for other modules than the queries were preconditioned on")
        out = {}
        for name in self.modules:
            value = pq.gradients[name]
            left_query, right_query = self.left_query[name].double(), self.right_query[name].double()
            if isinstance(value, tuple):
                u, v = (t.double() for t in value)
            else:
                u, sigma, vh = torch.linalg.svd(value.double(), full_matrices=False)
                u, v = u * sigma[:, None, :], vh.transpose(1, 2)
            out[name] = truncate_product(times(left_query, u), times(right_query, v), self.query_factor_rank)
        return out


def times(matrix: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """matrix @ batch[b] for every b ([m, n] × [B, n, k] → [B, m, k]) as one GEMM of batchᵀ by matrixᵀ: torch
    runs `matrix @ batch` as a batched product over B broadcast copies of the matrix, 3–5× slower on CPU for thin
    batches (k ≪ n, as here: k = rank + oversampling) at the demo model's sizes; for wide ones (k ≈ n) both take
    the same time, so the engine's other matrix @ batch products stay as they are."""
    return (batch.transpose(1, 2) @ matrix.t()).transpose(1, 2)


def truncate_product(u: torch.Tensor, v: torch.Tensor, rank: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The best rank-`rank` factors (A, B) of U Vᵀ per query ([Q, m, k], [Q, n, k]), float32; via QR of both
    sides and an SVD of the small k × k core."""
    if rank is None or rank >= u.shape[2]:
        return u.float(), v.float()
    q_u, r_u = torch.linalg.qr(u.double())
    q_v, r_v = torch.linalg.qr(v.double())
    core_u, sigma, core_vh = torch.linalg.svd(r_u @ r_v.transpose(1, 2))
    left = q_u @ (core_u[:, :, :rank] * sigma[:, None, :rank])
    right = q_v @ core_vh[:, :rank, :].transpose(1, 2)
    return left.float(), right.float()


def whitening(f: dict) -> tuple[torch.Tensor, ...]:
    """(L, R, L⁻ᵀ, R⁻ᵀ) from one module's eigenbases and eigenvalues (float64 work, float32 result)."""
    s_vecs, a_vecs = f[S_VECS].double(), f[A_VECS].double()
    s, a = f[S_VALS].double().clamp_min(0), f[A_VALS].double().clamp_min(0)
    w_s = s + HEURISTIC_DAMPING * s.mean() + torch.finfo(torch.float64).tiny
    w_a = a + HEURISTIC_DAMPING * a.mean() + torch.finfo(torch.float64).tiny
    return tuple(t.float().contiguous() for t in (w_s.rsqrt()[:, None] * s_vecs.t(), w_a.rsqrt()[:, None] * a_vecs.t(),
                                                  w_s.sqrt()[:, None] * s_vecs.t(), w_a.sqrt()[:, None] * a_vecs.t()))


def lowrank_whitened(factors: Factors, rank: int, seed: int = 0,
                     query_factor_rank: int | None = QUERY_FACTOR_RANK) -> LowRankWhitened:
    if rank < 1:
        raise EngineInputError(f"rank must be a positive integer, got {rank}")
    parts = {k: {} for k in ("left", "right", "left_query", "right_query", "omega")}
    for name in factors.modules:
        d_out, d_in = factors.shapes[name]
        f = factors.tensors.get(name, {})
        if S_VECS in f and S_VALS in f:
            values = whitening(f)
        else:                                   # diagonal / identity: plain rank-R of G_d
            values = (torch.eye(d_out), torch.eye(d_in), torch.eye(d_out), torch.eye(d_in))
        for key, value in zip(("left", "right", "left_query", "right_query"), values):
            parts[key][name] = value
        k = min(d_out, d_in, rank + OVERSAMPLE)
        generator = torch.Generator().manual_seed(derived_seed(seed, name.encode()))
        parts["omega"][name] = (parts["right"][name].t().double() @ torch.randn(
            d_in, k, generator=generator, dtype=torch.float64) / math.sqrt(k)).float()   # Rᵀ Ω
    return LowRankWhitened(list(factors.modules), rank, seed, **parts, query_factor_rank=query_factor_rank)


class CompressionCallback:
    """on_gradient for any number of compressors (LowRankWhitened, Projection: objects with modules, total_dim,
    slices(), to(), compress(name, a, g)); after each backward, take() gives their vectors of the batch."""

    def __init__(self, compressors: list, device, dtype):
        self.local = [c.to(device, dtype) for c in compressors]
        self.where = [c.slices() for c in self.local]
        self.device, self.dtype = device, dtype
        self.current: dict[tuple[int, str], torch.Tensor] = {}

    @property
    def modules(self) -> set[str]:
        return {name for where in self.where for name in where}

    def __call__(self, name: str, a: torch.Tensor, g: torch.Tensor) -> None:
        for i, compressor in enumerate(self.local):
            if name in self.where[i]:
                self.current[i, name] = compressor.compress(name, a, g)

    def take(self, n_documents: int) -> list[torch.Tensor]:
        """Per compressor the batch's vectors [B, total_dim] float32 on CPU (modules in slices() order)."""
        out = []
        for i, compressor in enumerate(self.local):
            vectors = torch.empty(n_documents, compressor.total_dim, dtype=self.dtype, device=self.device)
            for name, part in self.where[i].items():
                vectors[:, part] = self.current[i, name]
            out.append(vectors.float().cpu())
        self.current.clear()
        return out


def compress_documents(model: nn.Module, tracked: dict[str, nn.Module], compressors: list,
                       batches: Iterable[Batch], progress: bool = True,
                       task: Task = DEFAULT_TASK) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """One forward+backward per batch for any number of compressors; yields (batch.index, [vectors [B, total_dim]
    float32 on CPU per compressor]). (engine.scoring.score_documents does the same within its scoring pass.)"""
    device = next(model.parameters()).device
    callback = CompressionCallback(compressors, device, work_dtype(model))
    names = sorted(callback.modules, key=list(tracked).index)
    total = len(batches) if hasattr(batches, "__len__") else None
    with document_capture(model, {n: tracked[n] for n in names}, callback) as capture:
        for batch in tqdm(batches, total=total, desc="index", disable=not progress, unit="batch"):
            forward_backward(model, capture, batch.to(device), loss=task.document_loss)
            yield batch.index, callback.take(len(batch.index))


def split_vectors(compressor: LowRankWhitened, vectors: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per module the stored factors of N documents as contiguous (û rows [N·r, d_out], v̂ rows [N·r, d_in'])."""
    n, parts = vectors.shape[0], {}
    for name, where in compressor.slices().items():
        d_out, d_in = compressor.shape(name)
        r = compressor.module_rank(name)
        block = vectors[:, where]
        parts[name] = (block[:, :r * d_out].reshape(n * r, d_out).float().contiguous(),
                       block[:, r * d_out:].reshape(n * r, d_in).float().contiguous())
    return parts


def score_parts(compressor: LowRankWhitened, parts: dict, queries: dict[str, tuple[torch.Tensor, torch.Tensor]],
                n: int) -> torch.Tensor:
    """[Q, n] Σ_modules Σ_r (û_rᵀ Ŭ_q)·(v̂_rᵀ V̆_q) from split_vectors' parts and query_factors' (Ŭ, V̆)."""
    total = None
    for name, (u, v) in parts.items():
        q_u, q_v = queries[name]                                       # [Q, d_out, k], [Q, d_in, k]
        projected = torch.matmul(u, q_u) * torch.matmul(v, q_v)        # [Q, n·r, k]
        part = projected.sum(dim=2).reshape(len(q_u), n, -1).sum(dim=2)
        total = part if total is None else total + part
    return total


def score_block(compressor: LowRankWhitened, vectors: torch.Tensor,
                queries: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """[Q, N] estimated scores of N stored documents ([N, total_dim]) for query factors from `query_factors`."""
    return score_parts(compressor, split_vectors(compressor, vectors), queries, vectors.shape[0])
