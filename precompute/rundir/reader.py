"""Read a run directory (docs/run-directory.md): files only, never pickles, never torch.

`read_run(path)` validates a complete run and returns a `Run`: queries and documents as DataFrames, score
matrices memory-mapped, analysis tables and token scores read on demand. Every problem is a RunError whose
message is written for a person (the dashboard shows it as it is).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.rundir import layout
from precompute.rundir.lock import writer_pid
from precompute.rundir.score_kinds import SCORE_KINDS, per_nat  # noqa: F401  (SCORE_KINDS: re-exported)


class RunError(Exception):
    """A run directory that cannot be read; the message is written for a person."""


def read_json_file(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{what} is missing: `{path}`.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{what} is not valid JSON (`{path}`): {err}.") from None


def read_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise RunError(f"`{path.name}` is missing from the run directory.") from None
    except (ValueError, OSError, EOFError) as err:
        raise RunError(f"`{path.name}` is not a readable .npy file ({err}).") from None
    if array.shape != shape:
        raise RunError(f"`{path.name}` has shape {array.shape}, but the run's counts say {shape}.")
    if array.dtype.kind != "f":
        raise RunError(f"`{path.name}` holds {array.dtype}, expected float32.")
    return array


def read_parquet_file(path: Path, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns, filters=filters)
    except FileNotFoundError:
        raise RunError(f"`{path.name}` is missing from the run directory.") from None
    except Exception as err:  # pyarrow raises several types for damaged files
        raise RunError(f"`{path.name}` could not be read ({type(err).__name__}: {err}).") from None


def read_queries(path: Path) -> pd.DataFrame:
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise RunError(f"`{layout.QUERIES}` is missing from the run directory.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"`{layout.QUERIES}` is not valid JSON lines: {err}.") from None
    queries = pd.DataFrame.from_records(records)
    for column in ("id", "task", "prompt", "completion"):
        if column not in queries.columns:
            raise RunError(f"`{layout.QUERIES}` has no `{column}` field.")
    if "nats" not in queries.columns:
        queries["nats"] = np.nan
    queries["id"] = queries["id"].astype(str)
    return queries


def check_status(path: Path, manifest: dict) -> None:
    status = manifest.get("status")
    if status == layout.COMPLETE:
        return
    pid = writer_pid(str(path))
    if pid is not None:
        raise RunError(f"This run is in progress (status: `{status}`, being written by PID {pid}). "
                       "It opens here once precompute marks it complete.")
    raise RunError(f"This run is not complete (status: `{status}`) and no process is writing it. precompute "
                   "writes `complete` once every file is in place; resume it by running the same command again.")


@dataclass(frozen=True)
class Run:
    path: Path
    manifest: dict
    queries: pd.DataFrame  # score-row order; index 0..Q-1
    documents: pd.DataFrame  # score-column order: id, source, n_tokens, truncated, metadata (text: document_texts)
    layers: list[str]
    scores: np.ndarray  # [Q, D] memmap
    layer_scores: np.ndarray  # [Q, L, D] memmap
    normalized: np.ndarray  # [Q, D] memmap
    grad_norms: np.ndarray  # [D]
    stamp: float  # manifest.json's mtime: a rewritten run is a new version

    @property
    def key(self) -> tuple[str, float]:
        """(directory, manifest mtime): the version of this run that derived data belongs to."""
        return str(self.path), self.stamp

    @property
    def n_queries(self) -> int:
        return self.scores.shape[0]

    @property
    def n_documents(self) -> int:
        return self.scores.shape[1]

    @property
    def has_model(self) -> bool:
        """False for imported and synthetic runs: nothing can be recomputed with a model."""
        return not (self.manifest.get("synthetic") or self.manifest.get("imported"))

    def query_row(self, query_id: str) -> int:
        rows = self.queries.index[self.queries["id"] == query_id]
        if len(rows) == 0:
            raise RunError(f"The run has no query `{query_id}`.")
        return int(rows[0])

    @cached_property
    def doc_ids(self) -> np.ndarray:
        return self.documents["id"].to_numpy(dtype=object)

    @cached_property
    def doc_sources(self) -> np.ndarray:
        return self.documents["source"].astype(str).to_numpy(dtype=object)

    @cached_property
    def doc_positions(self) -> pd.Index:
        return pd.Index(self.doc_ids)

    def doc_column(self, doc_id: str) -> int | None:
        try:
            position = self.doc_positions.get_loc(doc_id)
        except KeyError:
            return None
        return position if isinstance(position, int) else None

    def score_row(self, row: int, kind: str = "raw") -> np.ndarray:
        """One query's scores over all documents as float32: raw, per nat of the completion, or normalised."""
        if kind == "normalized":
            return np.asarray(self.normalized[row])
        values = np.asarray(self.scores[row])
        if kind == "per_nat":
            return per_nat(values, float(self.queries["nats"].iloc[row]))
        return values

    def document_texts(self) -> pd.Series:
        return read_parquet_file(self.path / layout.DOCUMENTS, ["text"])["text"]

    def analysis_table(self, name: str) -> pd.DataFrame | None:
        path = self.path / layout.ANALYSIS_DIR / f"{name}.parquet"
        return read_parquet_file(path) if path.exists() else None

    def findings(self) -> dict | None:
        path = self.path / layout.ANALYSIS_DIR / layout.FINDINGS
        return read_json_file(path, f"`{layout.ANALYSIS_DIR}/{layout.FINDINGS}`") if path.exists() else None

    def token_scores(self, query_id: str) -> pd.DataFrame | None:
        path = self.path / layout.TOKEN_SCORES
        return read_parquet_file(path, filters=[("query_id", "==", query_id)]) if path.exists() else None


def manifest_mtime(path: Path) -> float:
    try:
        return (path / layout.MANIFEST).stat().st_mtime
    except OSError:
        return -1.0


def read_run(path: str | Path) -> Run:
    """Validate and open a complete run directory; raises RunError with a readable message."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"Run directory `{path}` does not exist.")
    manifest = read_json_file(path / layout.MANIFEST, f"The run's `{layout.MANIFEST}`")
    if not isinstance(manifest, dict):
        raise RunError(f"`{layout.MANIFEST}` is not a JSON object.")
    check_status(path, manifest)
    queries = read_queries(path / layout.QUERIES)
    fixed = [c for c in layout.DOCUMENT_COLUMNS if c != "text"]
    import pyarrow.parquet as pq
    try:
        available = pq.read_schema(path / layout.DOCUMENTS).names
    except FileNotFoundError:
        raise RunError(f"`{layout.DOCUMENTS}` is missing from the run directory.") from None
    except Exception as err:
        raise RunError(f"`{layout.DOCUMENTS}` could not be read ({type(err).__name__}: {err}).") from None
    documents = read_parquet_file(path / layout.DOCUMENTS, fixed + [c for c in available if c not in layout.DOCUMENT_COLUMNS])
    layers = read_json_file(path / layout.LAYERS, f"`{layout.LAYERS}`")
    n_q, n_d, n_l = len(queries), len(documents), len(layers)
    documents["id"] = documents["id"].astype(str)
    return Run(path=path, manifest=manifest, queries=queries, documents=documents,
               layers=[str(name) for name in layers],
               scores=read_array(path / layout.SCORES, (n_q, n_d)),
               layer_scores=read_array(path / layout.LAYER_SCORES, (n_q, n_l, n_d)),
               normalized=read_array(path / layout.NORMALIZED_SCORES, (n_q, n_d)),
               grad_norms=read_array(path / layout.GRAD_NORMS, (n_d,)),
               stamp=manifest_mtime(path))
