"""Factors split by module over torchrun ranks (`--module-shards K`): who owns what, writing and reading them.

The ranks form a grid (engine.distributed.Grid): rank r owns module shard r % K (engine.factors.partition_modules:
largest modules first, each to the least loaded shard) and works on data group r // K's documents. `fit` writes
each shard's tensors once, from data group 0 (layout.FACTOR_SHARD, atomically), then rank 0 writes meta.json
naming the files; with K = 1 everything stays in factors.safetensors, as before shards existed. For scoring each
rank loads only its shard; the K ranks of a data group score the same chunk for their modules and the partial
layer scores and squared gradient norms are summed over them. Rank 0 gathers the preconditioned queries of
every module (low-rank, small) for the per-token stage and the manifest's damping_used.
"""
from __future__ import annotations

import logging

import numpy as np

from precompute import rundir
from precompute.rundir.errors import UserInputError
from precompute.rundir import layout
from precompute.rundir.factor_files import remove_unlisted_shards
from precompute.pipeline.session import barrier

log = logging.getLogger("precompute")


def module_grid(settings):
    """This rank's engine.distributed.Grid for settings.module_shards (creates its process groups)."""
    from engine.distributed import grid_of

    try:
        return grid_of(settings.module_shards)
    except ValueError as error:
        raise UserInputError(f"--module-shards: {error}") from None


def save_factors(run: rundir.RunDir, factors, grid, session) -> None:
    """Each module shard's tensors written once (by its rank in data group 0), then meta.json by rank 0 (every
    rank calls this; ends on a barrier)."""
    from engine.factors import partition_modules

    directory = run.file(layout.FACTORS_DIR)
    files = rundir.shard_file_names(grid.module_shards)
    if grid.data_group == 0:
        factors.save_tensors(directory, files[grid.module_shard])
    barrier(session)
    if grid.rank == 0:
        parts = partition_modules(factors.shapes, factors.strategy, grid.module_shards)
        factors.save_meta(directory, dict(zip(files, parts)) if grid.module_shards > 1 else None)
        remove_unlisted_shards(directory)
    barrier(session)


def load_factors(run: rundir.RunDir, settings, modules: list[str] | None = None):
    """The factors of this rank's module shard (all of them with --module-shards 1). `modules` (the names in
    meta.json) is read from the run when not given."""
    from engine.factors import Factors, partition_modules

    directory = run.file(layout.FACTORS_DIR)
    grid = module_grid(settings)
    if grid.module_shards == 1:
        return Factors.load(directory, modules)
    meta = Factors.load(directory, modules=[])
    owned = partition_modules(meta.shapes, meta.strategy, grid.module_shards)[grid.module_shard]
    log.info("module shard %d of %d: %d of %d modules", grid.module_shard, grid.module_shards, len(owned),
             len(meta.modules))
    return Factors.load(directory, owned)


def sum_partial_scores(chunk: dict, grid) -> dict:
    """A chunk's layer scores and gradient norms summed over the ranks that scored its other modules: scores
    are then the sum over layers, norms √(Σ partial ‖·‖²)."""
    import torch

    from engine.distributed import sum_over

    if grid.module_shards == 1:
        return chunk
    layers = sum_over(torch.from_numpy(chunk["layer_scores"]), grid.data_peers)
    norms_sq = sum_over(torch.from_numpy(chunk["grad_norms"].astype(np.float64) ** 2), grid.data_peers)
    return {**chunk, "layer_scores": layers.numpy(), "scores": layers.sum(dim=1).numpy(),
            "grad_norms": norms_sq.sqrt().numpy().astype(np.float32)}


def gather_queries(pq, factors, grid):
    """Rank 0: every module's preconditioned queries (gathered from data group 0's ranks); others: their own."""
    from engine.distributed import gather_to_first
    from engine.precondition import PreconditionedQueries
    from engine.query_stream import merge_modules

    if grid.module_shards == 1 or grid.data_group != 0:
        return pq
    uncached = PreconditionedQueries(pq.modules, pq.damping, pq.gradients, pq.n_queries, pq.max_dense_cache_bytes)
    parts = gather_to_first(uncached, grid.data_peers)
    return merge_modules(parts, factors.modules) if grid.rank == 0 else pq
