"""Atomic writes and plain readers for the run directory's file types (JSON, JSON lines, .npy, Parquet).

Every write goes to a temporary file in the same directory and is moved into place with os.replace, so a
reader never sees a half-written file. Nothing is pickled.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

import numpy as np

CURRENT_UMASK = os.umask(0)
os.umask(CURRENT_UMASK)


def sha256_of_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_strings(parts) -> str:
    """sha256 over strings, each followed by a NUL (fingerprints of ids, texts, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path next to `path`; on success move it over `path`, on failure remove it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~CURRENT_UMASK)   # mkstemp makes 0600; readers expect ordinary permissions
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_json(path: str, value) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, ensure_ascii=False, allow_nan=True)
            handle.write("\n")


def read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_jsonl(path: str, rows) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_npy(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def read_npy(path: str, mmap: bool = True) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def write_parquet(path: str, frame) -> None:
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)


class AtomicMemmap:
    """A .npy file filled in place (np.lib.format.open_memmap) and moved into place by `commit()`."""

    def __init__(self, path: str, shape: tuple, dtype=np.float32):
        self.path = path
        self._context = atomic_path(path)
        self._temporary = self._context.__enter__()
        self.array = np.lib.format.open_memmap(self._temporary, mode="w+", dtype=dtype, shape=shape)

    def commit(self) -> None:
        self.array.flush()
        del self.array
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        self.array = None
        with contextlib.suppress(Exception):
            self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)
