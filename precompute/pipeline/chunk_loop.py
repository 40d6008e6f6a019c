"""The resumable chunk loop shared by scoring and the index: this rank's document ranges that the store does not
hold yet, computed and written one at a time (atomically, by rundir.ChunkStore) under one progress bar.

Two test hooks (environment variables) stand in for a killed process: exit abruptly, or sleep to be killed,
after N chunks of this attempt.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable

from tqdm.auto import tqdm

log = logging.getLogger("precompute")
EXIT_AFTER_CHUNKS_ENV = "PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS"    # test hook: die (like a kill) after N chunks
PAUSE_AFTER_CHUNKS_ENV = "PRECOMPUTE_TEST_PAUSE_AFTER_CHUNKS"  # test hook: sleep (to be killed) after N chunks


def fill_chunks(store, mine: list[tuple[int, int]], compute: Callable, desc: str, progress: bool) -> None:
    """For each range (start, stop) of `mine` not in `store`: `compute(start, stop, bar)` returns the chunk's
    arrays (written to the store) or None (this rank does not write, e.g. a module shard other than 0)."""
    todo = [(start, stop) for start, stop in mine if not store.has(start, stop)]
    exit_after = int(os.environ.get(EXIT_AFTER_CHUNKS_ENV, "0"))
    pause_after = int(os.environ.get(PAUSE_AFTER_CHUNKS_ENV, "0"))
    total, done = sum(b - a for a, b in mine), sum(b - a for a, b in mine) - sum(b - a for a, b in todo)
    bar = tqdm(total=total, initial=done, desc=desc, unit="doc", disable=not progress)
    for number, (start, stop) in enumerate(todo, start=1):
        arrays = compute(start, stop, bar)
        if arrays is not None:
            store.write(start, stop, **arrays)
        if exit_after and number >= exit_after:
            log.warning("%s=%d: exiting abruptly after %d chunks (test hook)", EXIT_AFTER_CHUNKS_ENV, exit_after,
                        number)
            os._exit(75)
        if pause_after and number >= pause_after:
            log.warning("%s=%d: pausing after %d chunks (test hook)", PAUSE_AFTER_CHUNKS_ENV, pause_after, number)
            time.sleep(3600)
    bar.close()
