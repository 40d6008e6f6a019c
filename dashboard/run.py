"""The dashboard's access to run directories: Streamlit caching around the torch-free reader
(precompute.rundir.reader), which owns the format. Files only, never pickles, never torch.

Big arrays are memory-mapped and held once per run version with st.cache_resource; the document texts are held
the same way (read-only, too big to copy on every access); analysis tables go through st.cache_data. A run that
is missing, still being written or corrupt raises RunError, which `open_run_or_stop` turns into a clear message.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from precompute.analysis.registry import TABLE_NAMES as ANALYSIS_TABLES  # noqa: F401  (the table list, once)
from precompute.rundir.reader import Run, RunError, manifest_mtime, read_run  # noqa: F401  (re-exported)

RunKey = tuple[str, float]  # (run directory, manifest mtime): what derived data is cached under
SCORE_KINDS = {"raw": "raw", "per nat": "per_nat", "gradient-normalised": "normalized"}


def _reader(run_key: RunKey) -> Run:
    return _cached_run(*run_key)


@st.cache_resource(show_spinner="Opening the run…", max_entries=8)
def _cached_run(path: str, manifest_mtime: float) -> Run:
    return read_run(Path(path))  # a RunError is not cached: the next rerun tries again


def load_run(path: str | Path) -> Run:
    """The run at `path`, opened once per manifest version; raises RunError."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise RunError(f"Run directory `{path}` does not exist. Pick another run in the sidebar, or start the app "
                       "with `streamlit run dashboard/app.py -- --run DIR`.")
    return _cached_run(str(path), manifest_mtime(path))


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
    return _reader(run_key).document_texts()


@st.cache_data(show_spinner=False, max_entries=64)
def analysis_table(run_key: RunKey, name: str) -> pd.DataFrame | None:
    """An analysis table, or None when the run has none (older or partial analysis)."""
    return _reader(run_key).analysis_table(name)


@st.cache_data(show_spinner=False, max_entries=8)
def findings(run_key: RunKey) -> dict | None:
    return _reader(run_key).findings()


@st.cache_data(show_spinner=False, max_entries=256)
def token_scores(run_key: RunKey, query_id: str) -> pd.DataFrame | None:
    """Per-token scores of one query's top/bottom documents, or None when the run has no token_scores."""
    return _reader(run_key).token_scores(query_id)


def require_table(run: Run, name: str) -> pd.DataFrame:
    """An analysis table, or an info message on the page and the script stopped."""
    table = analysis_table(run.key, name)
    if table is None:
        st.info(f"This run has no `analysis/{name}.parquet`; run `python -m precompute analyze --run DIR` on it.")
        st.stop()
    return table


def current_run() -> Run:
    """The run chosen in the sidebar (app.py has already checked that it opens)."""
    return open_run_or_stop(st.session_state["run_dir"])
