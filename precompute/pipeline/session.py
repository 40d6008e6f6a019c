"""The torch side of a command: the model loaded once, its tracked modules, and this process's rank."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from precompute.rundir.errors import UserInputError
from precompute.pipeline.settings import Settings

log = logging.getLogger("precompute")


@dataclass
class Session:
    model: object
    tokenizer: object
    tracked: dict
    device: str
    rank: int
    world: int


def open_session(settings: Settings, modules: list[str] | None = None) -> Session:
    """Load the model on this rank's device and find the tracked modules (`modules` names them exactly, e.g.
    the modules the run's factors were fitted on)."""
    from engine.distributed import init_from_env, rank_and_world
    from engine.model import find_tracked_modules, load_model, resolve_device

    init_from_env()
    rank, world = rank_and_world()
    device = resolve_device(settings.device)
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    log.info("loading model %s on %s (%s)", settings.model, device, settings.dtype)
    model, tokenizer = load_model(settings.model, device=device, dtype=settings.dtype)
    if modules is None:
        tracked = find_tracked_modules(model, settings.modules)
    else:
        named = dict(model.named_modules())
        missing = [name for name in modules if name not in named]
        if missing:
            raise UserInputError(f"factors name module {missing[0]!r} that model {settings.model} does not have")
        tracked = {name: named[name] for name in modules}
    log.info("tracking %d modules: %s ... %s", len(tracked), next(iter(tracked)), list(tracked)[-1])
    return Session(model, tokenizer, tracked, device, rank, world)


def barrier(session: Session) -> None:
    from engine.distributed import is_distributed
    if is_distributed():
        import torch.distributed as dist
        dist.barrier()


def finish_distributed() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
