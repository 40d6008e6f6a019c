"""Ask (?prompt=&completion=&generate=&k=): a new question against the run's index, answered by the ask worker.

The question lives in the URL, so a link (or a reload) asks it again and shows the same documents. The page
never imports torch: dashboard/ask_client.py starts a local worker process on first use (progress is shown
while it loads the model, factors and index) and keeps it for the next questions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import ask_client, published_view, url_state, widgets
from dashboard.run import current_run, document_texts

MAX_K = 50
DEFAULT_K = 10
TOKEN_DOCS = 5


def _index_stamp(run_path: Path) -> float:
    try:
        return (run_path / ask_client.INDEX_MANIFEST).stat().st_mtime
    except OSError:
        return -1.0


@st.cache_resource(show_spinner=False, max_entries=4)
def _worker(run_path: str, index_stamp: float) -> ask_client.AskWorker:
    """One worker per run and index version, shared by every session of this dashboard."""
    return ask_client.AskWorker(run_path)


@st.cache_data(show_spinner=False, max_entries=256)
def _answer(run_path: str, index_stamp: float, prompt: str, completion: str, generate: bool, k: int) -> dict:
    """The worker's result, kept per question (a reload or a second visit shows it at once)."""
    return _worker(run_path, index_stamp).ask(prompt, completion or None, generate, top=k,
                                              token_docs=min(k, TOKEN_DOCS))


def _index_caption(summary: dict) -> str:
    if summary["method"] == "lowrank":
        how = f"rank-{summary['rank']} factors of each document's whitened gradient"
    else:
        how = f"{summary['method']} projection, {summary['dim']:,} numbers per document"
    text = (f"Scores a new question against all {summary['n_documents']:,} documents from their stored compressed "
            f"gradients ({how}, {summary['bytes_per_document'] / 1024:.0f} KiB per document), preconditioned as in "
            "this run's scoring.")
    check = summary.get("check") or {}
    if check.get("pearson_median") is not None:
        text += (f" On {check['queries']} of the run's own queries the estimates correlate with the full scores at "
                 f"a median Pearson of {check['pearson_median']:.2f} (top-{check['top_k']} overlap "
                 f"{check['top_overlap_median']:.2f}).")
    return text


def _question_form() -> tuple[str, str, bool, int] | None:
    """The form, seeded from the URL; returns the question to show (the URL's, or the one just submitted)."""
    url_state.from_url("ask.prompt", "prompt", "")
    url_state.from_url("ask.completion", "completion", "")
    url_state.from_url("ask.generate", "generate", False, parse=url_state.parse_bool, options=[True, False])
    url_state.from_url("ask.k", "k", DEFAULT_K, parse=int, options=range(1, MAX_K + 1))
    if url_state.url_is_new() or "ask.asked" not in st.session_state:
        prompt = st.query_params.get("prompt")
        st.session_state["ask.asked"] = None if prompt is None else (
            st.session_state["ask.prompt"], st.session_state["ask.completion"], st.session_state["ask.generate"],
            st.session_state["ask.k"])
    with st.form("ask.form"):
        st.text_area("Prompt", key="ask.prompt", height=100, placeholder="e.g. The capital of Veloria is")
        left, right = st.columns([3, 1])
        left.text_input("Completion", key="ask.completion",
                        help="the text whose likelihood the documents explain (its gradient is the query)")
        right.checkbox("Let the model complete", key="ask.generate",
                       help="use the model's greedy completion of the prompt instead")
        st.slider("Documents per side", 1, MAX_K, key="ask.k")
        if st.form_submit_button("Ask", type="primary", icon=":material/search:"):
            st.session_state["ask.asked"] = (st.session_state["ask.prompt"], st.session_state["ask.completion"],
                                             st.session_state["ask.generate"], st.session_state["ask.k"])
    asked = st.session_state["ask.asked"]
    for param, value, default in zip(("prompt", "completion", "generate", "k"), asked or (None,) * 4,
                                     (None, "", False, DEFAULT_K)):
        url_state.to_url(param, value, default)
    return asked


def _start(worker: ask_client.AskWorker) -> None:
    """Start the worker with its progress shown (once; later questions find it ready)."""
    if worker.ready is not None and worker.running():
        return
    with st.status("Starting the ask worker (loads the model, factors and index once)…", expanded=True) as status:
        worker.start(on_progress=lambda message: status.write(message))
        status.update(label="Ask worker ready", state="complete", expanded=False)


def _tokens(entry: dict) -> widgets.Tokens | None:
    if entry.get("tokens") is None:
        return None
    return [str(token) for token in entry["tokens"]], np.asarray(entry["token_scores"], dtype=np.float64)


def _cards(run, side: str, entries: list[dict], texts) -> None:
    for entry in entries:
        column = int(entry["doc_index"])
        if column >= run.n_documents or str(run.doc_ids[column]) != entry["doc_id"]:
            st.error("The index does not match this run's documents; rebuild it with "
                     f"`python -m precompute index --run {run.path} --overwrite`.")
            st.stop()
        exact = entry.get("exact_score") is not None
        widgets.document_card(
            rank=entry["rank"], doc_id=entry["doc_id"], score=entry["exact_score"] if exact else entry["score"],
            score_label="exact" if exact else "index estimate", source=entry["source"],
            text=str(texts.iloc[column]), marks_for=lambda text: [], tokens=_tokens(entry),
            token_note=f"ranked by the index estimate; the first {TOKEN_DOCS} per side are recomputed exactly",
            key=f"ask.{side}.{entry['rank']}")


def _result(run, result: dict) -> None:
    with st.container(border=True):
        note = (result.get("generation") or {}).get("note", "the model's greedy completion")
        tag = f" ({note})" if result["generated"] else ""
        st.markdown(f"completion loss **{result['nats']:.3f}** nats over {result['n_completion_tokens']} "
                    f"tokens · answered in {result['seconds']['total']:.2f} s")
        prompt_column, completion_column = st.columns(2)
        prompt_column.caption("Prompt")
        prompt_column.markdown(widgets.escaped_text_html(result["prompt"]), unsafe_allow_html=True)
        completion_column.caption("Completion" + tag)
        completion_column.markdown(widgets.escaped_text_html(result["completion"]), unsafe_allow_html=True)
    texts = document_texts(run.key)
    top_column, bottom_column = st.columns(2)
    with top_column:
        st.subheader("Most positive (helps the completion)")
        _cards(run, "top", result["top"], texts)
    with bottom_column:
        st.subheader("Most negative (works against it)")
        _cards(run, "bottom", result["bottom"], texts)


def render() -> None:
    run = current_run()
    widgets.page_style()
    st.title("Ask")
    if published_view.model_needed(run, "Asking a new question"):   # imported runs: no model to ask
        st.stop()
    problem = ask_client.index_problem(run.path)
    if problem is not None:
        st.info(problem, icon=":material/manage_search:")
        st.stop()
    st.caption(_index_caption(ask_client.index_summary(run.path)))
    asked = _question_form()
    if asked is None:
        return
    prompt, completion, generate, k = asked
    if not prompt.strip():
        st.error("The prompt is empty: type a question.", icon=":material/error:")
        return
    if not generate and not completion.strip():
        st.error("Type the completion whose likelihood the documents should explain, or tick “Let the model "
                 "complete”.", icon=":material/error:")
        return
    stamp = _index_stamp(Path(run.path))
    worker = _worker(str(run.path), stamp)
    try:
        _start(worker)
        with st.spinner("Asking…"):
            result = _answer(str(run.path), stamp, prompt, "" if generate else completion, generate, k)
    except ask_client.AskError as error:
        st.error(str(error), icon=":material/error:")
        return
    _result(run, result)


if __name__ == "__main__":
    render()
