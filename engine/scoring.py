"""The scoring pass: one forward+backward per document batch scores every query.

score(q, d) = Σ_layers ⟨P(G_q), G_d⟩ with G_d = Σ_t g_t a_tᵀ. Per module the cheaper contraction is chosen by
FLOPs: materialise G_d (one GEMM against all Q dense P), or project with the rank-r factors,
Σ_t (Uᵀ g_t)·(Vᵀ a_t). Gradient norms ‖G_d‖² = Σ_ts (g_t·g_s)(a_t·a_s) on the low-rank path. Optionally the same
pass compresses every document's gradient for the ask index (engine.lowrank.CompressionCallback).
"""
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from engine.batches import Batch, Tokenized, make_batches
from engine.errors import EngineInputError
from engine.hooks import document_capture, forward_backward, work_dtype
from engine.lowrank import CompressionCallback
from engine.model import module_shape
from engine.precondition import PreconditionedQueries
from engine.task import DEFAULT_TASK, Task


@dataclass
class ScoreBatchResult:
    index: list[int]
    scores: torch.Tensor  # [Q, B] float32 CPU
    layer_scores: torch.Tensor  # [Q, L, B]
    grad_norms: torch.Tensor  # [B] ‖∇θ doc loss‖₂ over the tracked parameters
    vectors: list[torch.Tensor] | None = None  # per compressor [B, total_dim] float32 CPU (when compressing)


def materialise_flops(b: int, t: int, q: int, d_out: int, d_in: int) -> int:
    return 2 * b * t * d_out * d_in + 2 * q * b * d_out * d_in


def low_rank_flops(b: int, t: int, q: int, r: int, d_out: int, d_in: int) -> int:
    return 2 * b * t * q * r * (d_out + d_in) + 2 * b * t * q * r + 2 * b * t * t * (d_out + d_in)


def use_low_rank(pq: PreconditionedQueries, name: str, b: int, t: int, d_out: int, d_in: int) -> bool:
    r = pq.rank(name)
    if r is None:
        return False
    if not pq.can_materialise(name):
        return True
    return low_rank_flops(b, t, pq.n_queries, r, d_out, d_in) < materialise_flops(b, t, pq.n_queries, d_out, d_in)


def within_budget(pq: PreconditionedQueries, budget: int | None, element_size: int = 4) -> list[PreconditionedQueries]:
    """The queries in as few batches as fit `budget` bytes (their U, V or dense P in the work dtype, as the scoring
    pass copies them to the device), each with the rest of the budget as its cache for materialised P = U Vᵀ
    (use_low_rank). Each batch costs one more forward+backward over the documents; `pq` itself stays whole in host
    memory. None: all queries at once with the default 8 GiB cache."""
    if budget is None:
        return [pq]
    per_query = pq.bytes_per_query(element_size)
    if per_query > budget:
        raise EngineInputError(f"--memory-budget {budget:,} bytes is below one query's preconditioned gradients "
                               f"({per_query:,} bytes over {len(pq.modules)} modules)")
    size = min(pq.n_queries, budget // per_query)
    batches = [pq] if size == pq.n_queries else [pq.select(list(range(start, min(start + size, pq.n_queries))))
                                                 for start in range(0, pq.n_queries, size)]
    for batch in batches:
        batch.max_dense_cache_bytes = budget - batch.n_queries * per_query
    return batches


# Materialised G_d of consecutive batches are buffered (up to these limits) so that each score GEMM
# P [Q, D] @ G [D, N] reads P once for N documents instead of once per batch: on CPU that GEMM is bound by
# reading P, and N = 64 instead of 16 makes it several times faster. Results are still yielded per batch.
GROUP_DOCS = 64
GROUP_BYTES = 512 * 2**20


@dataclass
class PendingBatch:
    index: list[int]
    layer_scores: torch.Tensor  # [Q, L, B] in the work dtype, on the model's device
    norms_sq: torch.Tensor  # [B]
    vectors: list[torch.Tensor] | None = None


class BatchScorer:
    """on_gradient callback: low-rank modules are scored at once; materialised G_d wait for flush()."""

    def __init__(self, pq: PreconditionedQueries, tracked: dict[str, nn.Module], device, dtype):
        self.pq, self.device, self.dtype = pq, device, dtype
        self.layer_of = {name: i for i, name in enumerate(pq.modules)}
        self.shapes = {name: module_shape(tracked[name]) for name in pq.modules}
        self.pending: list[PendingBatch] = []
        # module -> (pending batch position, [B, d_out·d_in']) for the batches that materialised it; a module can
        # take the low-rank path for one batch and materialise for the next (the choice depends on B and T)
        self.pending_grads: dict[str, list[tuple[int, torch.Tensor]]] = {}
        self.pending_bytes = 0

    @property
    def current(self) -> PendingBatch:
        return self.pending[-1]

    def start(self, index: list[int]) -> None:
        b, q, n_layers = len(index), self.pq.n_queries, len(self.pq.modules)
        self.pending.append(PendingBatch(index, torch.zeros(q, n_layers, b, dtype=self.dtype, device=self.device),
                                         torch.zeros(b, dtype=self.dtype, device=self.device)))

    def __call__(self, name: str, a: torch.Tensor, g: torch.Tensor) -> None:
        if name not in self.layer_of:
            return
        b, t, _ = a.shape
        d_out, d_in = self.shapes[name]
        if use_low_rank(self.pq, name, b, t, d_out, d_in):
            u, v = self.pq.low_rank(name, self.device, self.dtype)
            projected = (g @ u) * (a @ v)  # (Uᵀ g_t)_r (Vᵀ a_t)_r per query  [B, T, Q·r]
            scores = projected.sum(dim=1).view(b, self.pq.n_queries, -1).sum(dim=2).t()
            self.current.layer_scores[:, self.layer_of[name], :] = scores
            gram = torch.bmm(g, g.transpose(1, 2)) * torch.bmm(a, a.transpose(1, 2))  # (g_t·g_s)(a_t·a_s)
            self.current.norms_sq.add_(gram.sum(dim=(1, 2)))
        else:
            per_doc = torch.bmm(g.transpose(1, 2), a).reshape(b, -1)  # G_d = Σ_t g_t a_tᵀ flattened
            self.current.norms_sq.add_(per_doc.square().sum(dim=1))
            self.pending_grads.setdefault(name, []).append((len(self.pending) - 1, per_doc))
            self.pending_bytes += per_doc.numel() * per_doc.element_size()

    def should_flush(self) -> bool:
        n_docs = sum(len(p.index) for p in self.pending)
        return n_docs >= GROUP_DOCS or self.pending_bytes >= GROUP_BYTES

    def flush(self) -> list[PendingBatch]:
        """One GEMM per materialised module over all pending documents: scores = P_flat @ G_flatᵀ."""
        for name, parts in self.pending_grads.items():
            p = self.pq.dense(name, self.device, self.dtype)
            scores = p.reshape(p.shape[0], -1) @ torch.cat([grad for _, grad in parts]).t()  # [Q, N]
            blocks = scores.split([len(grad) for _, grad in parts], dim=1)
            for (position, _), block in zip(parts, blocks):
                self.pending[position].layer_scores[:, self.layer_of[name], :] = block
        done, self.pending, self.pending_grads, self.pending_bytes = self.pending, [], {}, 0
        return done


def results(done: list[PendingBatch]) -> Iterator[ScoreBatchResult]:
    for pending in done:
        layer_scores = pending.layer_scores.float().cpu()
        yield ScoreBatchResult(pending.index, layer_scores.sum(dim=1), layer_scores,
                               pending.norms_sq.clamp_min(0).sqrt().float().cpu(), pending.vectors)


def score_documents(model: nn.Module, tracked: dict[str, nn.Module], pq: PreconditionedQueries,
                    batches: Iterable[Batch], progress: bool = True, compressors: list = (),
                    task: Task = DEFAULT_TASK) -> Iterator[ScoreBatchResult]:
    """Scores per batch; with `compressors` (engine.lowrank.compress_documents' kind) each result also carries
    their vectors of the batch's documents, from the same forward+backward."""
    device, dtype = next(model.parameters()).device, work_dtype(model)
    scorer = BatchScorer(pq, tracked, device, dtype)
    compression = CompressionCallback(list(compressors), device, dtype) if compressors else None
    names = sorted(set(pq.modules) | (compression.modules if compression else set()), key=list(tracked).index)

    def on_gradient(name, a, g):
        scorer(name, a, g)
        if compression is not None:
            compression(name, a, g)

    total = len(batches) if hasattr(batches, "__len__") else None
    with document_capture(model, {n: tracked[n] for n in names}, on_gradient) as capture:
        for batch in tqdm(batches, total=total, desc="scoring", disable=not progress, unit="batch"):
            batch = batch.to(device)
            scorer.start(batch.index)
            forward_backward(model, capture, batch, loss=task.document_loss)
            if compression is not None:
                scorer.current.vectors = compression.take(len(batch.index))
            if scorer.should_flush():
                yield from results(scorer.flush())
        yield from results(scorer.flush())


class TokenSplitter:
    """g_tᵀ P(G_q) a_t of one module, one document (a [T, d_in'], g [T, d_out]) and chosen queries: [k, T].

    For the low-rank path each query's r factor columns are kept as one contiguous block of rows ([Q·r, d]):
    gathering a few queries' blocks is then a copy of rows, not a strided column gather (2× the GEMM's time)."""

    def __init__(self, pq: PreconditionedQueries, device, dtype):
        self.pq, self.device, self.dtype = pq, device, dtype
        self.blocks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def factor_rows(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(Uᵀ, Vᵀ) stacked as [Q·r, d_out] and [Q·r, d_in']: rows q·r … q·r + r − 1 belong to query q."""
        if name not in self.blocks:
            self.blocks[name] = tuple(t.to(device=self.device, dtype=self.dtype).transpose(1, 2)
                                      .reshape(-1, t.shape[1]).contiguous() for t in self.pq.gradients[name])
        return self.blocks[name]

    def __call__(self, name: str, a: torch.Tensor, g: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """For the queries at `rows` (None: all, in order)."""
        if self.pq.is_low_rank(name):
            r = self.pq.rank(name)
            if rows is None:
                u, v = self.pq.low_rank(name, self.device, self.dtype)     # [d, Q·r]
            else:
                ut, vt = self.factor_rows(name)
                picked = (rows.unsqueeze(1) * r + torch.arange(r)).reshape(-1).to(self.device)
                u, v = ut[picked].t(), vt[picked].t()
            return ((g @ u) * (a @ v)).view(len(g), -1, r).sum(dim=2).t()
        p = self.pq.dense(name, self.device, self.dtype)                      # g_tᵀ P a_t = Σ_o g_to (P a_t)_o
        if rows is not None:
            p = p[rows.to(self.device)]
        return torch.einsum("to,qoi,ti->qt", g, p, a)


def split_by_token(model: nn.Module, tracked: dict[str, nn.Module], pq: PreconditionedQueries,
                   docs: list[Tokenized], rows: list[list[int]] | None = None, batch_size: int = 8,
                   pad_id: int = 0, progress: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
    """Per-token scores of each document for the queries it needs, every document run once, in padded
    length-sorted batches (as in scoring). Yields (position in `docs`, [len(rows[d]), T_d] float32 CPU) in
    length order, entry [i, t] = g_tᵀ P(G_q) a_t summed over layers for query q = rows[d][i] (rows None: every
    query, in order); a row sums to the document's score. Documents with no rows are skipped."""
    device, dtype = next(model.parameters()).device, work_dtype(model)
    wanted = [None if rows is None else torch.as_tensor(rows[d], dtype=torch.long) for d in range(len(docs))]
    order = [d for d in sorted(range(len(docs)), key=lambda d: len(docs[d].input_ids))
             if wanted[d] is None or len(wanted[d])]
    current: list[tuple[int, torch.Tensor]] = []
    split = TokenSplitter(pq, device, dtype)

    def on_gradient(name, a, g):
        for b, (d, out) in enumerate(current):
            n = out.shape[1]
            out += split(name, a[b, :n], g[b, :n], wanted[d])

    batches = make_batches([docs[d] for d in order], batch_size, pad_id)
    with document_capture(model, {name: tracked[name] for name in pq.modules}, on_gradient) as capture:
        for batch in tqdm(batches, total=-(-len(order) // batch_size), desc="token scores", unit="batch",
                          disable=not progress):
            current = [(order[i], torch.zeros(pq.n_queries if wanted[order[i]] is None else len(wanted[order[i]]),
                                              len(docs[order[i]].input_ids), dtype=dtype, device=device))
                       for i in batch.index]
            forward_backward(model, capture, batch.to(device))
            for d, out in current:
                yield d, out.float().cpu()


def token_scores(model: nn.Module, tracked: dict[str, nn.Module], pq: PreconditionedQueries,
                 doc: Tokenized) -> torch.Tensor:
    """[Q, T] with entry g_tᵀ P(G_q) a_t summed over layers; rows sum to the document's scores (one document,
    every query: split_by_token's simplest case)."""
    ((_, out),) = split_by_token(model, tracked, pq, [doc], batch_size=1)
    return out
