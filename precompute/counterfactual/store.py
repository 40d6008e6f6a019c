"""Where PBRF responses live: a directory, keyed by everything they depend on. numpy only (no torch).

    DIR/key.json            what the responses depend on (model, corpus, queries, tracked modules, damping, options)
    DIR/calibration.json    --epsilon auto: the ε chosen and the linearity check of the pilot set
    DIR/set-0000.json ...   one file per set (Δ log p of every query + solver diagnostics), written atomically
    DIR/linearity-0000.json the same set re-solved at 2ε (linearity check)
    DIR/responses.json      all of it assembled, once every set is done (what a run or the demo ships)

A run's own store is RUN/counterfactual/; the demo world's is data/pbrf/ (computed once, shipped). A complete
store whose key differs from the run's is stale: refused (one line) unless --recompute discards it; an
incomplete one with another key is discarded (it is only a cache of unfinished work).
"""
from __future__ import annotations

import glob
import os

import numpy as np

from precompute import rundir
from precompute.rundir import layout
from precompute.rundir.errors import UserInputError

RESPONSES = layout.RESPONSES
KEY = layout.RESPONSES_KEY
CALIBRATION = layout.RESPONSES_CALIBRATION
DAMPING_DIGITS = 6      # damping enters the key at 6 significant digits (float noise across machines is below)


def model_sha256(spec: str) -> str:
    """sha256 of a model directory's files (names and bytes, sorted) or of one .gguf file."""
    if os.path.isfile(spec):
        return rundir.sha256_of_file(spec)
    if not os.path.isdir(spec):
        return rundir.sha256_of_strings([spec])                   # an alias such as 'smollm2': the name itself
    names = sorted(n for n in os.listdir(spec) if os.path.isfile(os.path.join(spec, n)))
    return rundir.sha256_of_strings(f"{n}:{rundir.sha256_of_file(os.path.join(spec, n))}" for n in names)


def damping_key(damping: dict[str, float]) -> dict[str, str]:
    return {name: f"{float(value):.{DAMPING_DIGITS}g}" for name, value in sorted(damping.items())}


def describe_difference(stored: dict, wanted: dict) -> str:
    """The first key fields that differ, in words."""
    fields = [name for name in wanted if stored.get(name) != wanted.get(name)]
    fields += [name for name in stored if name not in wanted]
    return ", ".join(fields[:3]) or "nothing"


class ResponseStore:
    def __init__(self, path: str):
        self.path = path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def set_path(self, number: int, linearity: bool = False) -> str:
        return self.file(f"{'linearity' if linearity else 'set'}-{number:04d}.json")

    def complete(self) -> dict | None:
        path = self.file(RESPONSES)
        if not os.path.exists(path):
            return None
        try:
            return rundir.read_json(path)
        except (OSError, ValueError) as error:
            raise UserInputError(f"{path}: unreadable PBRF responses ({error})") from None

    def check(self, key: dict, recompute: bool) -> dict | None:
        """The complete responses for `key`, None when they must be computed; a stale complete store is refused
        (or discarded with `recompute`), stale unfinished work discarded. Nothing is written here."""
        complete = self.complete()
        if complete is not None:
            if complete.get("key") == key and not recompute:
                return complete
            if not recompute:
                raise UserInputError(
                    f"{self.file(RESPONSES)}: stale PBRF responses (computed for another "
                    f"{describe_difference(complete.get('key') or {}, key)}); pass --recompute to replace them "
                    "or --responses DIR for another store")
        return None

    def open(self, key: dict, recompute: bool) -> int:
        """Start or continue work for `key`; returns how many set files are kept."""
        os.makedirs(self.path, exist_ok=True)
        stored = rundir.read_json(self.file(KEY)) if os.path.exists(self.file(KEY)) else None
        if stored != key or recompute:
            for path in self.work_files() + [self.file(RESPONSES), self.file(CALIBRATION)]:
                if os.path.exists(path):
                    os.remove(path)
            rundir.write_json(self.file(KEY), key)
            return 0
        return len(glob.glob(self.file("set-*.json")))

    def work_files(self) -> list[str]:
        return sorted(glob.glob(self.file("set-*.json")) + glob.glob(self.file("linearity-*.json")))

    def read(self, path: str) -> dict | None:
        return rundir.read_json(path) if os.path.exists(path) else None

    def write(self, path: str, record: dict) -> None:
        rundir.write_json(path, record)

    def finish(self, document: dict) -> dict:
        """Write responses.json (atomically) and drop the per-set files."""
        rundir.write_json(self.file(RESPONSES), document)
        for path in self.work_files():
            os.remove(path)
        return document


def response_matrix(document: dict, query_ids: list[str]) -> np.ndarray:
    """[M sets, Q] Δ log p of `query_ids` (in that order) from a responses document."""
    column = {q: n for n, q in enumerate(document["query_ids"])}
    delta = np.asarray(document["delta"], dtype=np.float64)
    return delta[:, [column[q] for q in query_ids]]
