"""Where `validate` keeps its work: RUN/validation_chunks/, one file per random set and one per (query, ranking
method), written atomically. No torch.

`meta.json` fingerprints what every file depends on (settings, model, the run's scores, the validated queries, the
random sets); other settings discard the store. A ranking method's files carry a tag of its source (name, run,
that run's scores), so adding a method (another `--strategy-runs`) re-uses every file of the others. A finished
validation leaves its rows in analysis/validation.parquet and its fingerprint and tags in the manifest; the next
`validate` with the same fingerprint seeds the store from them, so only new methods are computed.
"""
from __future__ import annotations

import hashlib
import json
import os

import pandas as pd

from precompute import rundir
from precompute.rundir import layout

STORE = layout.VALIDATION_STORE
LR_FILE = layout.VALIDATION_LR
VALIDATION_FILE = layout.VALIDATION


def method_tag(name: str, fingerprint: str) -> str:
    """A method's files are valid while its name and what its sets come from (scores sha256, BM25 settings) hold;
    not its path, so a moved or copied run keeps its work."""
    text = json.dumps({"name": name, "from": fingerprint}, sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


class ValidationStore:
    def __init__(self, run_path: str):
        self.run = rundir.RunDir(run_path)
        self.chunks = rundir.ChunkStore(self.run, STORE)
        self.directory = self.chunks.directory

    def open(self, fingerprint: dict) -> int:
        """Create or validate the store; returns the number of files kept from an earlier attempt."""
        self.chunks.open(fingerprint)
        return len([name for name in os.listdir(self.directory) if name.endswith(".parquet")])

    def random_path(self, draw: int) -> str:
        return os.path.join(self.directory, f"random_{draw:04d}.parquet")

    def query_path(self, number: int, tag: str) -> str:
        return os.path.join(self.directory, f"query_{number:06d}.{tag}.parquet")

    def read_lr(self) -> dict | None:
        path = os.path.join(self.directory, LR_FILE)
        return rundir.read_json(path) if os.path.exists(path) else None

    def write_lr(self, calibration: dict) -> None:
        rundir.write_json(os.path.join(self.directory, LR_FILE), calibration)

    def seed_from_previous(self, fingerprint: dict, query_ids: list[str], tags: dict[str, str]) -> int:
        """Copy the rows of a finished validation with the same fingerprint into the store (random sets, lr, and
        every (query, method) whose method tag is unchanged); returns the number of files written."""
        previous = self.run.manifest().get("validation") or {}
        source = self.run.file(layout.ANALYSIS_DIR, VALIDATION_FILE)
        if previous.get("fingerprint") != {**fingerprint, "chunk_format": layout.CHUNK_FORMAT} or \
                not os.path.exists(source):
            return 0
        frame, written = pd.read_parquet(source), 0
        if self.read_lr() is None and previous.get("calibration"):
            self.write_lr(previous["calibration"])
        for draw, part in frame[frame["set"] == "random"].groupby("draw"):
            if not os.path.exists(self.random_path(int(draw))):
                rundir.write_parquet(self.random_path(int(draw)), part.reset_index(drop=True))
                written += 1
        old_tags = previous.get("method_tags") or {}
        number = {query_id: i for i, query_id in enumerate(query_ids)}
        ranked = frame[frame["set"] != "random"]
        for (query_id, method), part in ranked.groupby(["query_id", "method"], sort=False):
            tag = tags.get(method)
            if tag is None or old_tags.get(method) != tag or query_id not in number:
                continue
            path = self.query_path(number[query_id], tag)
            if not os.path.exists(path):
                rundir.write_parquet(path, part.reset_index(drop=True))
                written += 1
        return written

    def assemble(self, query_ids: list[str], tags: dict[str, str], draws: int, columns: list[str]) -> pd.DataFrame:
        """Every file of the current plan, in order: per query, methods in plan order (top, bottom), then the
        random sets by draw."""
        random = pd.concat([pd.read_parquet(self.random_path(d)) for d in range(draws)], ignore_index=True)
        parts = []
        for number, query_id in enumerate(query_ids):
            for tag in tags.values():
                path = self.query_path(number, tag)
                if os.path.exists(path):
                    parts.append(pd.read_parquet(path))
            parts.append(random[random["query_id"] == query_id].sort_values("draw"))
        return pd.concat(parts, ignore_index=True)[columns]

    def remove(self) -> None:
        self.chunks.remove()
