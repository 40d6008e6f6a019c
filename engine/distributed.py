"""torch.distributed helpers: ranks, contiguous sharding and sum reductions (no-ops in a single process)."""
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


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (returns t). gloo has no float64 issue; on nccl the tensor must be on CUDA."""
    if not is_distributed():
        return t
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        moved = t.cuda()
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        t.copy_(moved.cpu())
        return t
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
