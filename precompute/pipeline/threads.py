"""Intra-op CPU threads of the torch side: chosen once per process, before the work starts (torch-free import).

The choice: `--threads N`, else the environment's OMP_NUM_THREADS, else torch's own default (one thread per
physical core). Two jobs on one machine that each take every core slow each other down many times over (their
OpenMP threads spin waiting for each other): an index build ran at 2.1 documents/s beside another job against
≈ 35 alone. On a shared machine give each job its share of the cores (`--threads 1` beside one other job on 2
cores). The dashboard's Ask worker uses one thread (precompute.index.worker).
"""
from __future__ import annotations

import argparse
import os
import sys

from precompute.pipeline.flag_values import positive_int

THREADS_ENV = "OMP_NUM_THREADS"


def add_threads_flag(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    parser.add_argument("--threads", type=positive_int, default=default,
                        help="intra-op CPU threads for torch (default: %s); on a shared machine give each job its "
                             "share of the cores" % (default or f"${THREADS_ENV}, else one per physical core"))


def requested_threads(flag: int | None) -> int | None:
    """--threads, else a valid OMP_NUM_THREADS, else None (torch's default)."""
    if flag is not None:
        return flag
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def use_threads(flag: int | None) -> int | None:
    """Set the process's intra-op threads (the one place that calls torch.set_num_threads); returns the number,
    or None when torch's default is kept. Torch imported later reads OMP_NUM_THREADS, which is set here too."""
    threads = requested_threads(flag)
    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    return threads

