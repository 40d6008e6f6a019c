"""Runs imported from the published data of Ruis et al. (`precompute import-published`, docs/published-data.md):
what the sample is, each document's rank among the ~5M documents the paper scored, and what needs a model.

Small functions the pages call; each does nothing for a run that was not imported."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from precompute.rundir import layout

# score kind (dashboard.run.SCORE_KINDS values) -> the rank file that orders the corpus the same way
RANK_FILES = {"raw": layout.PUBLISHED_RANKS, "per_nat": layout.PUBLISHED_RANKS,
              "normalized": layout.PUBLISHED_RANKS_NORMALIZED}


def imported(manifest: dict) -> dict | None:
    """The manifest's `imported` section, or None for a run made here."""
    value = manifest.get("imported")
    return value if isinstance(value, dict) else None


@st.cache_resource(show_spinner=False, max_entries=16)
def corpus_ranks(run_key: tuple[str, float], kind: str) -> np.ndarray | None:
    """[Q, D] ranks among the paper's whole corpus for this score kind, or None (no or unreadable file)."""
    path = Path(run_key[0]) / RANK_FILES.get(kind, layout.PUBLISHED_RANKS)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError):
        return None


def rank_note(run, row: int, column: int, kind: str) -> str:
    """'rank 414,428 of ~5M': the document's 1-based rank for this query among all documents the paper
    scored (the files store 0-based ranks); '' for runs that were not imported."""
    info = imported(run.manifest)
    if info is None:
        return ""
    ranks = corpus_ranks(run.key, kind)
    if ranks is None or ranks.shape != (run.n_queries, run.n_documents):
        return ""
    position = int(ranks[row, column]) + (1 if int(info.get("rank_base", 0)) == 0 else 0)
    return f"rank {position:,} of {info.get('corpus_size_label', 'the corpus')}"


def overview_note(run) -> None:
    """What an imported run is: whose scores, which sample, what is missing without a model."""
    info = imported(run.manifest)
    if info is None:
        return
    st.info(
        f"**Imported, not computed here:** the published influence scores of {info.get('model', '?')} "
        f"({info.get('source', 'published data')}). {info.get('sample', '')}. "
        f"{info.get('selection', '')} The query cards show each document's rank among all "
        f"{info.get('corpus_size_label', '?')} documents. There is no model in this run: no per-token heatmaps, "
        "no per-layer split (one 'layer' holds the total), no completion loss (per-nat scores equal raw "
        "scores), and nothing that needs the model (asking new questions, validation) works on it.")


def model_needed(run, what: str) -> bool:
    """True (and an info box naming `what`) for an imported run: it has no model or factors to compute with."""
    info = imported(run.manifest)
    if info is None:
        return False
    st.info(f"{what} needs the model that produced the scores; this run holds the published scores of "
            f"{info.get('model', 'another model')}, imported without the model or its factors.")
    return True


def _prompts(queries: pd.DataFrame) -> pd.Series:
    """Prompts with whitespace and case normalised."""
    return queries["prompt"].astype(str).map(lambda p: " ".join(p.split()).casefold())


def shared_ids_with_other_prompt(queries_a: pd.DataFrame, queries_b: pd.DataFrame) -> int:
    """Queries whose id both runs have but whose prompt text differs (e.g. one run wraps it in a chat template)."""
    a = pd.Series(_prompts(queries_a).to_numpy(), index=queries_a["id"].astype(str))
    b = pd.Series(_prompts(queries_b).to_numpy(), index=queries_b["id"].astype(str))
    shared = a.index.intersection(b.index)
    return int((a[shared] != b[shared]).sum())


def shared_by_task(queries_a: pd.DataFrame, queries_b: pd.DataFrame) -> pd.DataFrame:
    """Per task of run a: its queries, and how many have the same prompt (whitespace and case aside) in run b."""
    shared = _prompts(queries_a).isin(set(_prompts(queries_b)))
    table = pd.DataFrame({"task": queries_a["task"].astype(str), "same_prompt": shared})
    return table.groupby("task", sort=False).agg(queries=("same_prompt", "size"),
                                                 same_prompt_in_other=("same_prompt", "sum")).reset_index()


def compare_note(run_a, run_b, n_shared: int, n_documents: int) -> None:
    """For imported runs: shared queries are the same questions (ids derive from the prompt) and how many per
    task; with a small sample, top-k overlap means something only for k below the number of documents."""
    if imported(run_a.manifest) is None and imported(run_b.manifest) is None:
        return
    table = shared_by_task(run_a.queries, run_b.queries)
    per_task = ", ".join(f"{row.task} {row.same_prompt_in_other}/{row.queries}" for row in table.itertuples())
    differ = shared_ids_with_other_prompt(run_a.queries, run_b.queries)
    wrapped = (f" Where the text differs ({differ:,} of the shared queries), the id still names the same question, "
               "asked in another wrapping (e.g. a chat template)." if differ else "")
    st.caption(f"Imported runs name each query after its task and prompt, so the {n_shared:,} shared queries are "
               f"the same questions asked of both models. Prompt text identical in both runs, per task: "
               f"{per_task}.{wrapped} With {n_documents:,} shared documents, top-k overlap is informative only "
               f"for k < {n_documents:,} (the choices offered).")
