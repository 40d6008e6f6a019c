"""Resumable score chunks in RUN/chunks/: one .npz per document range, written atomically."""
from __future__ import annotations

import os
import shutil

import numpy as np

from precompute.rundir import layout
from precompute.rundir.directory import RunDir
from precompute.rundir.files import atomic_path, read_json, write_json


def chunk_ranges(n_documents: int, per_chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + per_chunk, n_documents)) for start in range(0, n_documents, per_chunk)]


class ChunkStore:
    """`chunks/meta.json` holds a fingerprint of everything that determines the scores (plus CHUNK_FORMAT);
    chunks written under a different fingerprint are discarded so that a resumed run never mixes settings."""

    def __init__(self, run: RunDir, name: str = layout.CHUNKS_DIR):
        self.directory = run.file(name)

    def open(self, fingerprint: dict) -> int:
        """Create or validate the store; returns the number of chunks kept from an earlier attempt."""
        meta_path = os.path.join(self.directory, "meta.json")
        fingerprint = {**fingerprint, "chunk_format": layout.CHUNK_FORMAT}
        if os.path.isdir(self.directory):
            old = read_json(meta_path) if os.path.exists(meta_path) else None
            if old != fingerprint:
                shutil.rmtree(self.directory)
        os.makedirs(self.directory, exist_ok=True)
        if not os.path.exists(meta_path):
            write_json(meta_path, fingerprint)
        return len(self.completed())

    def _name(self, start: int, stop: int) -> str:
        return os.path.join(self.directory, f"chunk_{start:010d}_{stop:010d}.npz")

    def completed(self) -> dict[tuple[int, int], str]:
        found = {}
        for name in os.listdir(self.directory):
            if name.startswith("chunk_") and name.endswith(".npz"):
                start, stop = name[len("chunk_"):-len(".npz")].split("_")
                found[(int(start), int(stop))] = os.path.join(self.directory, name)
        return found

    def has(self, start: int, stop: int) -> bool:
        return os.path.exists(self._name(start, stop))

    def write(self, start: int, stop: int, **arrays: np.ndarray) -> None:
        with atomic_path(self._name(start, stop)) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        with np.load(self._name(start, stop), allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
