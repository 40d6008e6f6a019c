"""Byte counts of what one rank's process allocates, per stage, following the code that allocates it.

Every function names the code it mirrors; the numbers are the live tensors at each stage's high point, plus a
measured constant for the Python runtime. Assumptions the code cannot tell us are constants here, stated in the
plan's output and in BENCHMARKS.md. Factor bytes live in `factor_bytes_per_rank` only (module-sharded factors and
their storage dtype change them there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from precompute.plan.model_shape import ModelShape

GiB = 2**30
MiB = 2**20
FLOAT32 = 4
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
RUNTIME_BYTES = 470 * MiB           # measured (CPU): Python, torch 2.13, transformers, pandas, pyarrow, scipy and
                                    # the engine imported, a model's classes and tokenizer loaded (weights excluded)
CUDA_CONTEXT_BYTES = 600 * MiB      # assumption: CUDA context and allocator reserve on the device
DOCUMENT_OVERHEAD_BYTES = 300       # assumption: Python objects per document (id, text, source strings, list slots)
DENSE_CACHE_BYTES = 8 * GiB         # engine.precondition.PreconditionedQueries.max_dense_cache_bytes
GROUP_DOCS, GROUP_BYTES = 64, 512 * MiB   # engine.scoring: materialised G_d buffered up to these before a flush
LOGIT_COPIES = 4                    # logits, log-softmax saved for backward, its gradient, the gradient of logits


@dataclass
class Workload:
    """One run's sizes as the plan sees them (one rank: documents and queries are the whole run's)."""
    n_docs: int
    tokens_per_doc: float          # mean tokens per document after truncation
    batch_tokens: int              # T of the longest batch (padded): min(longest document, --max-length)
    text_bytes: int                # corpus text in memory (UTF-8 bytes)
    n_queries: int
    query_tokens: int              # T of a query batch
    factor_docs: int
    batch_size: int
    query_rank: int | None
    strategy: str = "ekfac"
    dtype: str = "float32"         # the model's (--dtype); statistics and contractions are float32
    factor_dtype: str = "float32"  # factor storage
    token_topk: int = 50
    device: str = "cpu"
    nproc: int = 1
    module_shards: int = 1
    memory_budget: int | None = None   # --memory-budget: bytes for the queries in scoring (within_budget)


def element_bytes(dtype: str) -> int:
    return DTYPE_BYTES[dtype]


def module_factor_bytes(strategy: str, d_out: int, d_in: int, dtype: str) -> int:
    """One module's stored factors: engine.factors.factor_bytes (the engine's one formula)."""
    from engine.factors import factor_bytes

    return factor_bytes(strategy, d_out, d_in, dtype) if strategy != "identity" else 0


def factor_bytes_per_rank(shape: ModelShape, strategy: str, dtype: str, shards: int) -> tuple[int, list[str]]:
    """(bytes of the factors the most loaded rank holds, its modules), modules dealt as the engine deals them
    (engine.factors.partition_modules): the one place the plan counts factors."""
    from engine.factors import partition_modules

    if strategy == "identity":
        return 0, list(shape.modules)
    best = (-1, [])
    for modules in partition_modules({n: list(d) for n, d in shape.modules.items()}, strategy, shards):
        total = sum(module_factor_bytes(strategy, *shape.modules[name], dtype) for name in modules)
        best = max(best, (total, modules), key=lambda item: item[0])
    return best


def activation_bytes(shape: ModelShape, w: Workload, batch: int, tokens: int) -> int:
    """Tensors autograd keeps for one forward+backward of `batch` × `tokens` (parameters frozen, so a linear keeps
    only its input): per layer and token about 9·hidden + 2·kv width + 4·MLP width (two RMSNorms, q/k/v after
    rotary, attention output, o_proj input, gate, SiLU, up, their product) in the model dtype, plus the logits
    path (LOGIT_COPIES × vocab, float32). Attention weights are not kept: sdpa's fused kernels (assumption)."""
    head_dim = shape.hidden_size // max(shape.n_heads, 1)
    per_token_layer = 9 * shape.hidden_size + 2 * shape.n_kv_heads * head_dim + 4 * shape.intermediate_size
    layers = batch * tokens * shape.n_layers * per_token_layer * element_bytes(w.dtype)
    logits = batch * tokens * shape.vocab_size * FLOAT32 * LOGIT_COPIES
    return layers + logits + captured_input_bytes(shape, w, batch, tokens)


def captured_input_bytes(shape: ModelShape, w: Workload, batch: int, tokens: int) -> int:
    """engine.hooks.GradientCapture keeps each tracked module's input a until its backward: a new tensor when
    converted to float32 (a bfloat16 model), counted here; otherwise the saved input itself. (A layer with a bias
    also gets a copy with the bias column appended: not counted, so GPT-2-like models are underestimated.)"""
    if w.dtype == "float32":
        return 0
    return batch * tokens * sum(d_in for _, d_in in shape.modules.values()) * FLOAT32


def query_storage_bytes(shape: ModelShape, modules: list[str], n_queries: int, rank: int | None) -> int:
    """engine.precondition: rank-r (U [d_out, r], V [d_in', r]) per query and module where r < min(d_out, d_in'),
    else the dense P [d_out, d_in'], float32."""
    total = 0
    for name in modules:
        d_out, d_in = shape.modules[name]
        low = rank is not None and rank < min(d_out, d_in)
        total += n_queries * (rank * (d_out + d_in) if low else d_out * d_in) * FLOAT32
    return total


def scoring_query_batches(shape: ModelShape, modules: list[str], w: Workload) -> tuple[int, int, int]:
    """engine.scoring.within_budget: (queries per scoring pass, passes over the documents, dense cache limit of
    each pass). Without --memory-budget: all queries in one pass with the 8 GiB cache."""
    if w.memory_budget is None or w.n_queries == 0:
        return w.n_queries, 1, DENSE_CACHE_BYTES
    per_query = query_storage_bytes(shape, modules, 1, w.query_rank)
    size = max(1, min(w.n_queries, w.memory_budget // max(per_query, 1)))
    return size, math.ceil(w.n_queries / size), max(0, w.memory_budget - size * per_query)


def contraction_choice(shape: ModelShape, modules: list[str], w: Workload, batch: int) -> dict[str, str]:
    """engine.scoring.use_low_rank at batch × batch_tokens for one scoring pass's queries, modules in backward
    order (last layer first, as the hooks fire), the dense cache filling up to its limit: 'materialised' or
    'low-rank' per module."""
    from engine.scoring import low_rank_flops, materialise_flops

    cached, choice = 0, {}
    q, _, limit = scoring_query_batches(shape, modules, w)
    b, t, r = batch, w.batch_tokens, w.query_rank
    for name in reversed(modules):
        d_out, d_in = shape.modules[name]
        if r is None or r >= min(d_out, d_in):
            choice[name] = "materialised"
            continue
        dense = q * d_out * d_in * FLOAT32
        fits = cached + dense <= limit
        cheaper = not low_rank_flops(b, t, q, r, d_out, d_in) < materialise_flops(b, t, q, d_out, d_in)
        choice[name] = "materialised" if fits and cheaper else "low-rank"
        cached += dense if choice[name] == "materialised" and r is not None else 0
    return {name: choice[name] for name in modules}


def scoring_buffers(shape: ModelShape, w: Workload, batch: int, choice: dict[str, str]) -> dict[str, int]:
    """engine.scoring.BatchScorer: the dense P cache of materialised low-rank modules (one per scoring pass, all kept
    for the whole scoring), the pending G_d of up to
    GROUP_DOCS documents / GROUP_BYTES (checked after each batch) plus one module's concatenation at the flush,
    and on the low-rank path (g U) and (a V) [B, T, Q·r] with their product, and the token Grams [B, T, T]."""
    (q, passes, _), r = scoring_query_batches(shape, list(choice), w), w.query_rank or 0
    b, t = batch, w.batch_tokens
    materialised = [n for n, how in choice.items() if how == "materialised"]
    low = [n for n, how in choice.items() if how == "low-rank"]
    dense_cache = passes * sum(q * math.prod(shape.modules[n]) * FLOAT32 for n in materialised if r)
    per_batch = sum(b * math.prod(shape.modules[n]) * FLOAT32 for n in materialised)
    groups = 0
    if per_batch:
        groups = min(math.ceil(GROUP_DOCS / b), math.ceil(GROUP_BYTES / per_batch))
    largest = max((math.prod(shape.modules[n]) for n in materialised), default=0)
    pending = groups * per_batch + groups * b * largest * FLOAT32 + (q * groups * b * FLOAT32 if materialised else 0)
    projections = (3 * b * t * q * r + 3 * b * t * t) * FLOAT32 if low else 0
    return {"dense_cache": dense_cache, "pending": pending, "projections": projections}


def fit_bytes(shape: ModelShape, modules: list[str], w: Workload, batch: int) -> dict[str, int]:
    """engine.factors.covariance_sums / fit_lambda: the float32 sums A, S of every owned module plus, while one
    module is decomposed, its float64 copy, eigenvectors and eigenvalues; then the eigenbases (float32) with the
    Λ sums and one module's per-document Q_Sᵀ G_d Q_A [B, d_out, d_in'] and its square."""
    if w.strategy == "identity":
        return {"covariances": 0, "eigen_transient": 0, "lambda": 0, "lambda_transient": 0, "eigen": 0}
    shapes = [shape.modules[n] for n in modules]
    kron = w.strategy in ("kfac", "ekfac")
    covariances = sum(i * i + o * o for o, i in shapes) * FLOAT32 if kron else 0
    widest = max(max(o, i) for o, i in shapes)
    eigen_transient = 3 * widest * widest * 8 if kron else 0
    eigen = sum(i * i + i + o * o + o for o, i in shapes) * FLOAT32 if kron else 0
    has_lambda = w.strategy in ("ekfac", "diagonal")
    lam = sum(o * i for o, i in shapes) * FLOAT32 if has_lambda else 0
    lambda_transient = 2 * batch * max(o * i for o, i in shapes) * FLOAT32 if has_lambda else 0
    return {"covariances": covariances, "eigen_transient": eigen_transient, "lambda": lam,
            "lambda_transient": lambda_transient, "eigen": eigen}


def query_bytes(shape: ModelShape, modules: list[str], w: Workload, query_batch: int) -> dict[str, int]:
    """engine.query_stream / engine.precondition: one batch of dense query gradients [q, d_out, d_in'] of every
    owned module (float32; query_gradients holds them twice while torch.cat joins each module's parts); for the
    largest module, the rotated middle [q, d_out, d_in'] and, when truncated to rank r, the two float64 copies
    truncate() multiplies for the Gram matrix (4 more float32 sizes) with that Gram and its eigenvectors; and the
    preconditioned queries twice while the batches are concatenated."""
    dense = sum(query_batch * math.prod(shape.modules[n]) for n in modules) * FLOAT32
    largest = max(math.prod(shape.modules[n]) for n in modules)
    short = max(min(shape.modules[n]) for n in modules)
    truncated = w.query_rank is not None and w.query_rank < short
    copies = 5 if truncated else 2
    transient = copies * query_batch * largest * FLOAT32 + (2 * query_batch * short * short * 8 if truncated else 0)
    stored = query_storage_bytes(shape, modules, w.n_queries, w.query_rank)
    return {"gradients": dense, "transient": transient, "stored": stored}


def corpus_bytes(w: Workload) -> int:
    """precompute.inputs.readers.Corpus keeps every text, id and source: the UTF-8 bytes plus Python objects per document."""
    return w.text_bytes + w.n_docs * DOCUMENT_OVERHEAD_BYTES


def contraction_flops_per_token(shape: ModelShape, w: Workload, batch: int, choice: dict[str, str]) -> float:
    """engine.scoring's FLOPs of the chosen contractions per document token, beyond the forward+backward."""
    from engine.scoring import low_rank_flops, materialise_flops

    (q, passes, _), r = scoring_query_batches(shape, list(choice), w), w.query_rank
    b, t = batch, w.batch_tokens
    total = 0
    for name, how in choice.items():
        d_out, d_in = shape.modules[name]
        total += (low_rank_flops(b, t, q, r, d_out, d_in) if how == "low-rank"
                  else materialise_flops(b, t, q, d_out, d_in))
    return passes * total / (b * t)
