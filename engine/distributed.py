"""torch.distributed helpers: ranks, contiguous sharding, the data × module-shard grid and sum reductions (no-ops
in a single process)."""
import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_from_env() -> None:
    """init_process_group (nccl on CUDA, gloo on CPU) when launched by torchrun with WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or (dist.is_available() and dist.is_initialized()):
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def shard(n: int, rank: int, world: int) -> range:
    """Contiguous block of range(n) for this rank; sizes differ by at most one, earlier ranks get the extra."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: torch.Tensor, group=None) -> torch.Tensor:
    """In-place sum over ranks (of `group`, default all; returns t). On nccl the tensor is moved to CUDA."""
    if not is_distributed():
        return t
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        moved = t.cuda()
        dist.all_reduce(moved, op=dist.ReduceOp.SUM, group=group)
        t.copy_(moved.cpu())
        return t
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


class Grid:
    """world = n_data_groups × module_shards ranks. Rank r owns module shard r % K of the factors and works on
    data group r // K's documents. Factor statistics are summed over `module_peers` (one rank per data group, all
    owning the same modules); partial scores over `data_peers` (the K ranks scoring the same documents)."""

    def __init__(self, rank: int, world: int, module_shards: int = 1):
        if module_shards < 1 or world % module_shards:
            raise ValueError(f"module shards ({module_shards}) must divide the number of ranks ({world})")
        self.rank, self.world, self.module_shards = rank, world, module_shards
        self.module_shard, self.data_group = rank % module_shards, rank // module_shards
        self.n_data_groups = world // module_shards

    @property
    def module_peers(self) -> list[int]:
        return list(range(self.module_shard, self.world, self.module_shards))

    @property
    def data_peers(self) -> list[int]:
        start = self.data_group * self.module_shards
        return list(range(start, start + self.module_shards))

    def all_groups(self) -> list[list[int]]:
        """Every module-peer and data-peer group, in the one order every rank creates them in."""
        k, d = self.module_shards, self.n_data_groups
        return [list(range(s, self.world, k)) for s in range(k)] + [list(range(g * k, g * k + k)) for g in range(d)]


_GROUPS: dict[tuple[int, ...], object] = {}


def process_group(ranks: list[int]):
    """The torch.distributed group of `ranks` (None: the whole world); created on first use of `grid_of`."""
    if len(ranks) == (dist.get_world_size() if is_distributed() else 1):
        return None
    return _GROUPS[tuple(ranks)]


def grid_of(module_shards: int = 1) -> Grid:
    """This process's Grid; under torchrun also creates its process groups (every rank calls this alike)."""
    rank, world = rank_and_world()
    grid = Grid(rank, world, module_shards)
    if is_distributed():
        for ranks in grid.all_groups():
            if 1 < len(ranks) < world and tuple(ranks) not in _GROUPS:
                _GROUPS[tuple(ranks)] = dist.new_group(ranks)
    return grid


def sum_over(t: torch.Tensor, ranks: list[int]) -> torch.Tensor:
    """In-place sum over the ranks `ranks` (this rank among them; returns t); a no-op for one rank."""
    if len(ranks) <= 1 or not is_distributed():
        return t
    return all_reduce_sum(t, process_group(ranks))


def gather_to_first(value, ranks: list[int]) -> list | None:
    """Every rank in `ranks` (this one among them) sends `value`; ranks[0] gets them in `ranks` order, the
    others None. (Pickled: for small objects such as low-rank query factors.)"""
    if len(ranks) <= 1 or not is_distributed():
        return [value]
    rank = dist.get_rank()
    gathered = [None] * len(ranks) if rank == ranks[0] else None
    dist.gather_object(value, gathered, dst=ranks[0], group=process_group(ranks))
    return gathered
