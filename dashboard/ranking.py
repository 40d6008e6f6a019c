"""Rankings read from the score matrices (cached per run): top/bottom documents of a query, per-layer sums.
The ranking rule itself is precompute.analysis.ranking's (one definition for analysis and dashboard)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.run import Run, RunKey
from precompute.analysis import ranking
from precompute.analysis.ranking import top_and_bottom, top_columns  # noqa: F401  (re-exported for views)


@st.cache_data(show_spinner=False, max_entries=512)
def ranked_documents(run_key: RunKey, _run: Run, row: int, kind: str, k: int):
    """(top indices, top scores, bottom indices, bottom scores) of one query under one score kind."""
    values = _run.score_row(row, kind)
    top, bottom = top_and_bottom(values, k)
    return top, values[top], bottom, values[bottom]


@st.cache_data(show_spinner=False, max_entries=512)
def layer_sums(run_key: RunKey, _run: Run, row: int) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, the sum of one query's positive and of its negative scores over all documents."""
    return ranking.layer_sums(_run.layer_scores[row])
