"""One query's view: its prompt and completion (with the spans it shares with the shown documents), and its top
and bottom documents as cards with answer / step / span highlights and per-token heatmaps.

Used by the Queries page; `document_cards` serves any page that shows a ranking of documents for a query."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from dashboard import highlight, published_view, spans, url_state, widgets
from dashboard.correctness import is_correct, model_answer, same_answer
from dashboard.query_table import correctness_label
from dashboard.run import SCORE_KINDS
from dashboard.text_match import context_terms, query_targets


@dataclass
class Linking:
    """The completion's spans shared with the shown documents, and which one the user chose (index or None)."""
    completion: str
    found: list[spans.Span] = field(default_factory=list)
    chosen: int | None = None
    min_words: int = spans.DEFAULT_MIN_WORDS

    def marks(self, text: str) -> list[highlight.Mark]:
        """Highlights of the document spans that repeat a completion span (numbered like the completion's)."""
        marks = []
        for number, span in enumerate(self.found, 1):
            kind = "span-on" if number - 1 == self.chosen else "span"
            label = spans.span_label(self.completion, span)
            for found in spans.linked_spans(self.completion, span, text, self.min_words):
                marks.append(highlight.Mark(found.start, found.end, kind, f"repeats completion span {number}: "
                                            f"“{label}”", number))
        return marks

    def completion_marks(self) -> list[highlight.Mark]:
        return [highlight.Mark(span.start, span.end, "span-on" if i == self.chosen else "span",
                               f"span {i + 1}: found verbatim in the shown documents", i + 1)
                for i, span in enumerate(self.found)]


@st.cache_data(show_spinner=False, max_entries=8)
def correctness_by_id(run_key, _queries: pd.DataFrame) -> dict[str, str]:
    """Query id -> "correct" / "incorrect" / "unknown" (shown wherever a query is listed)."""
    return {str(q["id"]): correctness_label(is_correct(q)) for q in _queries.to_dict("records")}


def with_correctness(run, table: pd.DataFrame, column: str = "query_id") -> pd.DataFrame:
    """`table` with a `correct` column after `column` (the model's answer right / wrong / unknown)."""
    if "correct" in table.columns:  # the analysis table says it already
        return table
    labels = correctness_by_id(run.key, run.queries)
    table = table.copy()
    table.insert(table.columns.get_loc(column) + 1, "correct", table[column].astype(str).map(labels))
    return table


def targets_of(query: dict) -> list[tuple[str, str]]:
    """The reference answer and steps, plus the model's own answer when it differs (an incorrect completion)."""
    targets = query_targets(query)
    given = model_answer(query.get("completion", ""))
    reference = query.get("answer")
    if given is not None and reference is not None and not same_answer(given, str(reference)):
        targets.append(("model_answer", given))
    return targets


def correctness_badge(query: dict) -> str:
    label = correctness_label(is_correct(query))
    colour = {"correct": "green", "incorrect": "red", "unknown": "gray"}[label]
    return f":{colour}-badge[{label}]"


def query_header(query: dict, linking: Linking) -> None:
    """The query: id, task, correctness, answers, loss; prompt and completion (spans marked)."""
    with st.container(border=True):
        given = model_answer(query.get("completion", ""))
        reference = query.get("answer")
        answers = f"model's answer **{widgets.markdown_text(given)}**" if given is not None else "no answer found"
        if reference is not None and str(reference).strip():
            answers += f", reference **{widgets.markdown_text(reference)}**"
        st.markdown(f"**{widgets.markdown_text(query['id'])}** · task {widgets.markdown_text(query['task'])} · "
                    f"{correctness_badge(query)} · {answers} · completion loss "
                    f"{float(query.get('nats', float('nan'))):.3f} nats")
        prompt_column, completion_column = st.columns(2)
        prompt_column.caption("Prompt")
        prompt_column.markdown(highlight.render(str(query["prompt"]), []), unsafe_allow_html=True)
        completion_column.caption("Completion (numbered outlines: words the shown documents repeat verbatim)")
        completion_column.markdown(highlight.render(linking.completion, linking.completion_marks()),
                                   unsafe_allow_html=True)


def choose_span(linking: Linking, documents: list[tuple[str, str]]) -> None:
    """Pills of the completion's shared spans (?span=N); lists the shown documents that repeat the chosen one.

    documents: (label, text) of the shown cards."""
    if not linking.found:
        st.caption(f"No run of {linking.min_words}+ words of the completion occurs verbatim in the shown documents.")
        return
    labels = [f"{i}: {spans.span_label(linking.completion, span, 40)}" for i, span in enumerate(linking.found, 1)]
    numbers = list(range(1, len(labels) + 1))
    chosen = url_state.bound(st.pills, "Completion spans found verbatim in the shown documents — choose one",
                             key="queries.span", param="span", default=None, parse=int, options=numbers,
                             what="completion span", format_func=lambda n: labels[n - 1])
    linking.chosen = None if chosen is None else chosen - 1
    if linking.chosen is None:
        return
    span = linking.found[linking.chosen]
    holders = [label for label, text in documents
               if spans.linked_spans(linking.completion, span, text, linking.min_words)]
    st.caption(f"Span {chosen} occurs in {len(holders)} of the {len(documents)} shown documents: "
               + ", ".join(holders))


def token_note(run, tokens: pd.DataFrame | None) -> str:
    if tokens is None:
        return "No per-token scores: this run has no token_scores.parquet."
    depth = run.manifest.get("token_topk", "the first")
    return (f"No per-token scores for this document: they exist for each query's top and bottom {depth} "
            "documents by raw score only.")


def document_cards(run, query: dict, side: str, columns, values, kind_label: str, tokens: pd.DataFrame | None,
                   texts: pd.Series, linking: Linking) -> None:
    """Cards for ranked documents (score columns `columns` with scores `values`) of one query."""
    targets = targets_of(query)
    context = context_terms(query)
    note = token_note(run, tokens)
    for rank, (column, value) in enumerate(zip(columns, values), 1):
        doc_id = str(run.doc_ids[int(column)])
        doc_tokens = None
        if tokens is not None:
            doc_tokens = tokens[(tokens["doc_id"] == doc_id) & (tokens["side"] == side)]

        def marks_for(text: str) -> list[highlight.Mark]:
            return highlight.target_marks(text, targets, context) + linking.marks(text)

        widgets.document_card(rank=rank, doc_id=doc_id, score=float(value), score_label=kind_label,
                              source=str(run.doc_sources[int(column)]), text=str(texts.iloc[int(column)]),
                              marks_for=marks_for, tokens=doc_tokens, token_note=note, key=f"queries.{side}.{rank}",
                              corpus_rank=published_view.rank_note(run, run.query_row(str(query["id"])), int(column),
                                                                   SCORE_KINDS.get(kind_label, "raw")))
