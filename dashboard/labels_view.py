"""The researcher's labels (precompute/rundir/labels.py; RUN/labels.json, the dashboard's only write): a label
choice under each card, the label set, CSV export and import, a random sample to label, and the label column for
the Sources page's breakdowns (precompute/analysis/label_breakdown.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import widgets
from dashboard.run import Run, RunKey, analysis_table, document_texts
from precompute.analysis import label_breakdown
from precompute.analysis.inputs import AnalysisInputs
from precompute.rundir import labels as run_labels

NONE = "—"
LABEL_COLUMN = "your_labels"     # the breakdown column's name (a corpus column may be called `label`)
SAMPLE_SIZE = 20
SNIPPET = 400


def current(run: Run) -> run_labels.Labels | None:
    """The run's labels, or None after showing why they cannot be read (the file is kept as it is)."""
    try:
        return run_labels.read_labels(str(run.path))
    except run_labels.LabelsError as err:
        st.error(f"**Labels cannot be used.** {err}", icon=":material/label_off:")
        return None


def _write(change, *args) -> None:
    try:
        change(*args)
    except run_labels.LabelsError as err:
        st.session_state["labels.error"] = str(err)


def show_write_error() -> None:
    error = st.session_state.pop("labels.error", None)
    if error:
        st.error(f"**The label was not saved.** {error}", icon=":material/label_off:")


def card_label(run: Run, labels: run_labels.Labels | None, doc_id: str, key: str) -> None:
    """A label choice for one document, saved at once (the file's current value shown on every run): a button
    that names the current label and opens the choice (a select box on every card made 100 cards' re-render
    ≈ 35% slower in the browser)."""
    if labels is None:
        return
    widget_key = f"labels.{key}.{doc_id}"
    current = labels.labels.get(doc_id, NONE)
    st.session_state[widget_key] = current
    shown = "Label" if current == NONE else f"Label: {widgets.markdown_text(current)}"
    st.popover(shown, icon=":material/label:").selectbox(
        "Label", [NONE, *labels.label_set], key=widget_key, label_visibility="collapsed",
        on_change=lambda: _write(run_labels.set_label, str(run.path), doc_id,
                                 None if st.session_state[widget_key] == NONE else st.session_state[widget_key]))


def label_set_editor(run: Run, labels: run_labels.Labels) -> None:
    with st.form("labels.set_form", border=False):
        names = st.text_input("Label names (comma-separated)", value=", ".join(labels.label_set))
        if st.form_submit_button("Save label names"):
            _write(run_labels.set_label_set, str(run.path), [n for n in names.split(",")])
            st.rerun()


def csv_exchange(run: Run, labels: run_labels.Labels) -> None:
    left, right = st.columns([1, 2])
    left.download_button("Labels CSV", data=run_labels.to_csv(labels), file_name="labels.csv", mime="text/csv",
                         key="labels.csv", on_click="ignore", icon=":material/download:")
    uploaded = right.file_uploader("Import labels (CSV: doc_id,label)", type=["csv"], key="labels.upload")
    if uploaded is not None and right.button("Import", key="labels.import"):
        try:
            run_labels.import_csv(str(run.path), uploaded.getvalue().decode("utf-8"), run.doc_ids)
            st.success("Labels imported.")
        except (run_labels.LabelsError, UnicodeDecodeError) as err:
            st.error(f"**Nothing was imported.** {err}")


def random_sample(run: Run, labels: run_labels.Labels) -> None:
    """Draw documents at random (never drawn before) and label them here: the chance band's own labelling."""
    labelled = sum(1 for d in labels.sample if d in labels.labels)
    st.caption(f"Random sample: {len(labels.sample)} documents drawn, {labelled} labelled. The breakdown below "
               "compares the labelled top documents with the labelled sample.")
    if st.button(f"Draw {SAMPLE_SIZE} more random documents to label", key="labels.draw"):
        rng = np.random.default_rng([len(labels.sample), run.n_documents])
        left = np.setdiff1d(np.arange(run.n_documents), run.doc_positions.get_indexer(list(labels.sample)))
        drawn = rng.choice(left, size=min(SAMPLE_SIZE, len(left)), replace=False)
        _write(run_labels.add_sample, str(run.path), [str(run.doc_ids[int(c)]) for c in drawn])
        st.rerun()
    waiting = [d for d in labels.sample if d not in labels.labels][:5]
    texts = document_texts(run.key)
    for doc_id in waiting:
        column = run.doc_column(doc_id)
        with st.container(border=True):
            st.caption(f"{doc_id} · {run.doc_sources[column]}")
            st.text(" ".join(str(texts.iloc[column])[:SNIPPET].split()))
            card_label(run, labels, doc_id, "sample")


def run_inputs(run: Run) -> AnalysisInputs:
    return AnalysisInputs(scores=run.scores, queries=run.queries.to_dict("records"),
                          documents=run.documents[["id"]], doc_texts=[])


@st.cache_data(show_spinner="Finding where each query's top and bottom k end…", max_entries=4)
def rank_cutoffs(run_key: RunKey, _run: Run) -> list:
    """label_breakdown.row_cutoffs per query, from the run's rank_cutoffs table (or computed once per run)."""
    return label_breakdown.query_cutoffs(run_inputs(_run), analysis_table(run_key, "rank_cutoffs"))


@st.cache_data(show_spinner="Breaking the labels down…", max_entries=8)
def label_multipliers(run_key: RunKey, _run: Run, revision: int, _labels: run_labels.Labels) -> pd.DataFrame:
    """category_multipliers rows for the label column (cached per labels revision; reads only the labelled
    documents' scores, placed against the run's rank cutoffs)."""
    values, _ = run_labels.label_column(_labels, _run.doc_positions)
    return label_breakdown.column_multipliers(run_inputs(_run), LABEL_COLUMN, values,
                                              background=run_labels.UNLABELLED, cutoffs=rank_cutoffs(run_key, _run))


@st.cache_data(show_spinner=False, max_entries=8)
def task_tops(run_key: RunKey, _run: Run, k: int) -> dict:
    """Each task's distinct top-k documents (independent of the labels: kept across labels revisions)."""
    return label_breakdown.task_tops(run_inputs(_run), k)


@st.cache_data(show_spinner=False, max_entries=8)
def sample_comparison(run_key: RunKey, _run: Run, revision: int, _labels: run_labels.Labels, k: int):
    return label_breakdown.sample_comparison(run_inputs(_run), _labels, k, task_tops(run_key, _run, k))


def breakdown_columns(run: Run) -> list[str]:
    """[LABEL_COLUMN] when the run has readable labels, else []."""
    try:
        return [LABEL_COLUMN] if run_labels.read_labels(str(run.path)).labels else []
    except run_labels.LabelsError:
        return []


def breakdown_table(run: Run) -> pd.DataFrame:
    """category_multipliers rows of the label column, once per labels revision (0.54 s CPU at 1M documents with
    the run's rank_cutoffs table, most of it the bootstrap intervals; BENCHMARKS.md)."""
    labels = run_labels.read_labels(str(run.path))
    return label_multipliers(run.key, run, labels.revision, labels)


def label_values(run: Run) -> np.ndarray:
    values, _ = run_labels.label_column(run_labels.read_labels(str(run.path)), run.doc_positions)
    return np.asarray(values, dtype=object)


def revision(run: Run) -> int:
    try:
        return run_labels.read_labels(str(run.path)).revision
    except run_labels.LabelsError:
        return -1


def panel(run: Run) -> None:
    """The Sources page's label section: names, CSV, the random sample, labelled top documents vs the sample."""
    st.subheader("Your labels")
    show_write_error()
    labels = current(run)
    if labels is None:
        return
    st.caption(f"{len(labels.labels):,} documents labelled, kept in `{run_labels.labels_path(str(run.path))}` "
               "(label documents under their cards on the Queries page, or in the sample below). With labels, "
               f"`{LABEL_COLUMN}` joins the breakdowns above; unlabelled documents count as "
               f"`{run_labels.UNLABELLED}` there, so its multipliers compare labels against the whole corpus.")
    label_set_editor(run, labels)
    csv_exchange(run, labels)
    random_sample(run, labels)
    if not labels.labels:
        return
    k = st.selectbox("Top k per query", [5, 10, 20, 50, 100], index=2, key="labels.k")
    table = sample_comparison(run.key, run, labels.revision, labels, k)
    st.caption("Per task and label: its share among the labelled documents of the task's top k (distinct "
               "documents) and among the labelled random sample, exact 95% intervals, their ratio and Fisher's "
               "exact p for equal shares.")
    widgets.table(table, key="labels.comparison", name=f"labels_vs_sample_top{k}",
                  column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns
                                 if table[c].dtype.kind == "f"})
