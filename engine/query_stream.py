"""Query gradients preconditioned one batch of queries at a time.

`query_gradients` returns every query's dense gradient of every tracked module before `precondition` runs:
Q × tracked parameters × 4 bytes at once — 318 MB per query for SmolLM2-135M's 90 MLP linears (79.6M weights),
9.6 GB for 30 queries. Preconditioning and rank-r truncation act on each query alone, so doing them per batch
gives the same result while only one batch is ever dense; at rank 32 a query then keeps 24 MB (U and V).
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from engine.batches import Tokenized
from engine.factors import Factors
from engine.precondition import PreconditionedQueries, QueryArguments, precondition, query_gradients
from engine.task import DEFAULT_TASK, Task


def concatenate(parts: list[PreconditionedQueries]) -> PreconditionedQueries:
    """Queries of several PreconditionedQueries (same modules and damping) stacked in order."""
    first = parts[0]
    gradients = {}
    for name in first.modules:
        values = [part.gradients[name] for part in parts]
        if isinstance(values[0], tuple):
            gradients[name] = tuple(torch.cat([value[i] for value in values]) for i in range(len(values[0])))
        else:
            gradients[name] = torch.cat(values)
    return PreconditionedQueries(first.modules, first.damping, gradients, sum(part.n_queries for part in parts),
                                 first.max_dense_cache_bytes)


def preconditioned_queries(model: nn.Module, tracked: dict[str, nn.Module], queries: list[Tokenized],
                           factors: Factors, args: QueryArguments,
                           batch_size: int, progress: bool = False,
                           task: Task = DEFAULT_TASK) -> tuple[PreconditionedQueries, torch.Tensor]:
    """The same (PreconditionedQueries, nats [Q]) as precondition(query_gradients(...)), in batches of queries."""
    parts, nats = [], []
    starts = range(0, len(queries), batch_size)
    for start in tqdm(starts, desc="query gradients + preconditioning", unit="batch", disable=not progress):
        grads, batch_nats = query_gradients(model, tracked, queries[start:start + batch_size], batch_size, task)
        parts.append(precondition(grads, factors, args))
        nats.append(batch_nats)
        del grads
    return concatenate(parts), torch.cat(nats)


def merge_modules(parts: list[PreconditionedQueries], modules: list[str]) -> PreconditionedQueries:
    """The same queries' preconditioned gradients of disjoint module sets (module shards) as one, in `modules`
    order, with every part's damping."""
    gradients, damping = {}, {}
    for part in parts:
        gradients.update(part.gradients)
        damping.update(part.damping)
    missing = [name for name in modules if name not in gradients]
    if missing:
        raise ValueError(f"no module shard holds {missing[0]}")
    return PreconditionedQueries(modules, {name: damping[name] for name in modules},
                                 {name: gradients[name] for name in modules}, parts[0].n_queries,
                                 parts[0].max_dense_cache_bytes)
