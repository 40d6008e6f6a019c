"""The run directory: file names, the manifest, atomic writes and resumable score chunks.

Layout and meaning of every file: docs/run-directory.md. Every write goes to a temporary file in the same
directory and is moved into place with os.replace, so a reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from precompute.errors import UserInputError

FORMAT_VERSION = 1
CHUNK_FORMAT = 2          # 2: chunks carry each document's n_tokens and truncated flag next to its scores

MANIFEST = "manifest.json"
QUERIES = "queries.jsonl"
DOCUMENTS = "documents.parquet"
SCORES = "scores.npy"
LAYER_SCORES = "layer_scores.npy"
LAYERS = "layers.json"
GRAD_NORMS = "doc_grad_norms.npy"
NORMALIZED_SCORES = "normalized_scores.npy"
TOKEN_SCORES = "token_scores.parquet"
FACTORS_DIR = "factors"
CHUNKS_DIR = "chunks"
ANALYSIS_DIR = "analysis"

# status values, in pipeline order ("fitted": factors written by `fit`, nothing scored yet)
STATUSES = ("fitting", "fitted", "scoring", "analyzing", "complete", "failed")

# every file a complete run holds (factors only for real runs, see `required_files`)
SCORE_FILES = (QUERIES, DOCUMENTS, SCORES, LAYER_SCORES, LAYERS, GRAD_NORMS, NORMALIZED_SCORES, TOKEN_SCORES)


CURRENT_UMASK = os.umask(0)
os.umask(CURRENT_UMASK)


class RunDirError(UserInputError):
    """A user-facing problem with the run directory (exit code 2)."""


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_of_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "numpy", "pandas", "scipy", "pyarrow"):
        module = sys.modules.get(name)
        if module is None and name in ("numpy", "pandas", "scipy", "pyarrow"):
            module = __import__(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    return versions


# ---------------------------------------------------------------- atomic writes

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


# ---------------------------------------------------------------- the run directory

@dataclass
class RunDir:
    path: str

    def file(self, *names: str) -> str:
        return os.path.join(self.path, *names)

    @property
    def manifest_path(self) -> str:
        return self.file(MANIFEST)

    def exists(self) -> bool:
        return os.path.exists(self.manifest_path)

    def manifest(self) -> dict:
        if not self.exists():
            raise RunDirError(f"{self.manifest_path}: no manifest; is this a run directory?")
        try:
            return read_json(self.manifest_path)
        except (OSError, ValueError) as error:
            raise RunDirError(f"{self.manifest_path}: unreadable manifest ({error})") from None

    def status(self) -> str | None:
        return self.manifest().get("status") if self.exists() else None

    def is_complete(self) -> bool:
        return self.status() == "complete"

    def write_manifest(self, manifest: dict) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.manifest_path, manifest)

    def update_manifest(self, **fields) -> dict:
        manifest = self.manifest() if self.exists() else {}
        manifest.update(fields)
        self.write_manifest(manifest)
        return manifest

    def set_status(self, status: str) -> dict:
        assert status in STATUSES, status
        return self.update_manifest(status=status)

    def record_timing(self, stage: str, seconds: float) -> dict:
        manifest = self.manifest()
        manifest.setdefault("timings", {})[stage] = round(float(seconds), 3)
        self.write_manifest(manifest)
        return manifest

    def prepare_fresh(self, overwrite: bool) -> None:
        """Make the directory ready for a new run: refuses to replace a complete run unless `overwrite`."""
        if self.is_complete() and not overwrite:
            raise RunDirError(f"{self.path}: a complete run is already there; pass --overwrite to replace it")
        if overwrite and os.path.isdir(self.path):
            shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)

    def missing_files(self, with_factors: bool = True) -> list[str]:
        names = list(SCORE_FILES)
        if with_factors:
            names += [os.path.join(FACTORS_DIR, "factors.safetensors"), os.path.join(FACTORS_DIR, "meta.json")]
        return [name for name in names if not os.path.exists(self.file(name))]


def new_manifest(command: str, **fields) -> dict:
    manifest = {
        "format_version": FORMAT_VERSION,
        "status": "fitting",
        "created": utc_now(),
        "command": command,
        "timings": {},
        "versions": package_versions(),
        "synthetic": False,
    }
    manifest.update(fields)
    return manifest


# ---------------------------------------------------------------- resumable score chunks

class ChunkStore:
    """Score chunks in RUN/chunks/: one .npz per document range, written atomically.

    `chunks/meta.json` holds a fingerprint of everything that determines the scores (plus CHUNK_FORMAT);
    chunks written under a different fingerprint are discarded so that a resumed run never mixes settings.
    """

    def __init__(self, run: RunDir):
        self.directory = run.file(CHUNKS_DIR)

    def open(self, fingerprint: dict) -> int:
        """Create or validate the store; returns the number of chunks kept from an earlier attempt."""
        meta_path = os.path.join(self.directory, "meta.json")
        fingerprint = {**fingerprint, "chunk_format": CHUNK_FORMAT}
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
