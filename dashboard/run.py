"""Load a run directory (docs/run-directory.md) for the dashboard: files only, never pickles, never torch.

Big arrays are memory-mapped and held once per run with st.cache_resource; the document table is held the
same way (read-only, too big to copy on every access); analysis tables go through st.cache_data.
A run that is missing, still being written or corrupt raises RunError, which `open_run_or_stop` turns into
a clear message on the page.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

ANALYSIS_TABLES = (
    "top_docs", "correlations", "task_correlations", "magnitude", "magnitude_by_task", "power_law",
    "answer_occurrence", "answer_rates", "source_multipliers", "layer_share",
)
RunKey = tuple[str, float]  # (run directory, manifest mtime): what derived data is cached under
SCORE_KINDS = {"raw": "raw", "per nat": "per_nat", "gradient-normalised": "normalized"}


class RunError(Exception):
    """A run directory that cannot be shown; the message is written for the page."""


@dataclass(frozen=True)
class Run:
    path: Path
    manifest: dict
    queries: pd.DataFrame  # score-row order; index 0..Q-1
    documents: pd.DataFrame  # score-column order: id, source, n_tokens, truncated (text via document_texts)
    layers: list[str]
    scores: np.ndarray  # [Q, D] memmap
    layer_scores: np.ndarray  # [Q, L, D] memmap
    normalized: np.ndarray  # [Q, D] memmap
    grad_norms: np.ndarray  # [D]
    stamp: float  # manifest.json's mtime: a rewritten run gets new cache entries

    @property
    def key(self) -> RunKey:
        """Cache key of this run's derived data: (directory, manifest mtime)."""
        return str(self.path), self.stamp

    @property
    def n_queries(self) -> int:
        return self.scores.shape[0]

    @property
    def n_documents(self) -> int:
        return self.scores.shape[1]

    def query_row(self, query_id: str) -> int:
        return int(self.queries.index[self.queries["id"] == query_id][0])

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
            nats = float(self.queries["nats"].iloc[row])
            return values / nats if nats > 0 else values
        return values


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{what} is missing: `{path}`.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{what} is not valid JSON (`{path}`): {err}.") from None


def _load_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
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


def _read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise RunError(f"`{path.name}` is missing from the run directory.") from None
    except Exception as err:  # pyarrow raises several types for damaged files
        raise RunError(f"`{path.name}` could not be read ({type(err).__name__}: {err}).") from None


def _read_queries(path: Path) -> pd.DataFrame:
    try:
        lines = path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        raise RunError("`queries.jsonl` is missing from the run directory.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"`queries.jsonl` is not valid JSON lines: {err}.") from None
    queries = pd.DataFrame.from_records(records)
    for column in ("id", "task", "prompt", "completion"):
        if column not in queries.columns:
            raise RunError(f"`queries.jsonl` has no `{column}` field.")
    if "nats" not in queries.columns:
        queries["nats"] = np.nan
    queries["id"] = queries["id"].astype(str)
    return queries


def read_run(path: Path) -> Run:
    """Validate and open a run directory; raises RunError with a readable message."""
    if not path.is_dir():
        raise RunError(f"Run directory `{path}` does not exist. Pick another run in the sidebar, or start the app "
                       "with `streamlit run dashboard/app.py -- --run DIR`.")
    manifest = _read_json(path / "manifest.json", "The run's `manifest.json`")
    if not isinstance(manifest, dict):
        raise RunError("`manifest.json` is not a JSON object.")
    status = manifest.get("status")
    if status != "complete":
        raise RunError(
            f"This run is not complete (status: `{status}`). precompute writes `complete` once every file is "
            "in place; wait for it to finish or resume it."
        )
    queries = _read_queries(path / "queries.jsonl")
    documents = _read_parquet(path / "documents.parquet", ["id", "source", "n_tokens", "truncated"])
    layers = _read_json(path / "layers.json", "`layers.json`")
    n_q, n_d, n_l = len(queries), len(documents), len(layers)
    documents["id"] = documents["id"].astype(str)
    return Run(
        path=path,
        manifest=manifest,
        queries=queries,
        documents=documents,
        layers=[str(name) for name in layers],
        scores=_load_array(path / "scores.npy", (n_q, n_d)),
        layer_scores=_load_array(path / "layer_scores.npy", (n_q, n_l, n_d)),
        normalized=_load_array(path / "normalized_scores.npy", (n_q, n_d)),
        grad_norms=_load_array(path / "doc_grad_norms.npy", (n_d,)),
        stamp=_manifest_mtime(path),
    )


@st.cache_resource(show_spinner="Opening the run…", max_entries=8)
def _cached_run(path: str, manifest_mtime: float) -> Run:
    return read_run(Path(path))  # a RunError is not cached: the next rerun tries again


def _manifest_mtime(path: Path) -> float:
    try:
        return (path / "manifest.json").stat().st_mtime
    except OSError:
        return -1.0


def load_run(path: str | Path) -> Run:
    """The run at `path`, opened once per manifest version; raises RunError."""
    path = Path(path).resolve()
    return _cached_run(str(path), _manifest_mtime(path))


def open_run_or_stop(path: str | Path) -> Run:
    """The run, or a clear error on the page and the script stopped."""
    try:
        return load_run(path)
    except RunError as err:
        st.error(f"**Cannot open run `{path}`.** {err}")
        st.stop()


@st.cache_resource(show_spinner="Reading document texts…", max_entries=4)
def document_texts(run_key: RunKey) -> pd.Series:
    """All document texts (score-column order), read once per run and shared read-only."""
    return _read_parquet(Path(run_key[0]) / "documents.parquet", ["text"])["text"]


@st.cache_data(show_spinner=False, max_entries=64)
def analysis_table(run_key: RunKey, name: str) -> pd.DataFrame | None:
    """An analysis table, or None when the run has none (older or partial analysis)."""
    path = Path(run_key[0]) / "analysis" / f"{name}.parquet"
    if not path.exists():
        return None
    return _read_parquet(path)


@st.cache_data(show_spinner=False, max_entries=8)
def findings(run_key: RunKey) -> dict | None:
    path = Path(run_key[0]) / "analysis" / "findings.json"
    return _read_json(path, "`analysis/findings.json`") if path.exists() else None


@st.cache_data(show_spinner=False, max_entries=256)
def token_scores(run_key: RunKey, query_id: str) -> pd.DataFrame | None:
    """Per-token scores of one query's top/bottom documents, or None when the run has no token_scores."""
    path = Path(run_key[0]) / "token_scores.parquet"
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path, filters=[("query_id", "==", query_id)])
    except Exception as err:
        raise RunError(f"`token_scores.parquet` could not be read ({err}).") from None


def require_table(run: Run, name: str) -> pd.DataFrame:
    """An analysis table, or an info message on the page and the script stopped."""
    table = analysis_table(run.key, name)
    if table is None:
        st.info(f"This run has no `analysis/{name}.parquet`; run `python -m precompute analyze` on it.")
        st.stop()
    return table


def current_run() -> Run:
    """The run chosen in the sidebar (app.py has already checked that it opens)."""
    return open_run_or_stop(st.session_state["run_dir"])
