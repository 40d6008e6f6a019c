"""One query's view: its prompt and completion (with the spans it shares with the shown documents), and its top
and bottom documents as cards with answer / step / span highlights and per-token heatmaps.

Used by the Queries page; `document_cards` serves any page that shows a ranking of documents for a query."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import highlight, published_view, spans, url_state, widgets
from dashboard.correctness import is_correct, model_answer, reference_answer, same_answer
from dashboard.query_table import correctness_label
from dashboard.run import SCORE_KINDS, token_scores
from dashboard.text_match import context_terms, query_targets
from precompute.analysis.tables.ground_truth import KIND_COLUMN


@st.cache_data(show_spinner=False, max_entries=32)
def shared_spans(completion: str, texts: tuple[str, ...]) -> spans.SharedSpans:
    """The completion's verbatim spans in the shown texts, computed once per (completion, texts)."""
    return spans.shared_spans(completion, list(texts))


@dataclass
class Linking:
    """The completion's spans shared with the shown texts (each card's full text and token text), and which one
    the user chose (index or None)."""
    completion: str
    texts: tuple[str, ...] = ()
    chosen: int | None = None
    shared: spans.SharedSpans = field(init=False)

    def __post_init__(self):
        self.shared = shared_spans(self.completion, tuple(dict.fromkeys(self.texts)))
        self._index = {text: i for i, text in enumerate(dict.fromkeys(self.texts))}

    @property
    def found(self) -> tuple[spans.Span, ...]:
        return self.shared.found

    def marks(self, text: str) -> list[highlight.Mark]:
        """Highlights of the text's spans that repeat a completion span (numbered like the completion's)."""
        if text not in self._index:
            return []
        marks = []
        for number, linked in enumerate(self.shared.linked[self._index[text]], 1):
            kind = "span-on" if number - 1 == self.chosen else "span"
            label = spans.span_label(self.completion, self.found[number - 1])
            for found in linked:
                marks.append(highlight.Mark(found.start, found.end, kind, f"repeats completion span {number}: "
                                            f"“{label}”", number))
        return marks

    def holds(self, text: str, number: int) -> bool:
        return text in self._index and bool(self.shared.linked[self._index[text]][number])

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
    reference = reference_answer(query)
    if given is not None and reference is not None and not same_answer(given, reference):
        targets.append(("model_answer", given))
    return targets


def correctness_badge(query: dict) -> str:
    label = correctness_label(is_correct(query))
    colour = {"correct": "green", "incorrect": "red", "unknown": "gray"}[label]
    return f":{colour}-badge[{label}]"


def completion_loss(query: dict) -> str:
    nats = pd.to_numeric(query.get("nats"), errors="coerce")
    return "completion loss unknown (no model)" if pd.isna(nats) else f"completion loss {float(nats):.3f} nats"


def query_header(query: dict, linking: Linking) -> None:
    """The query: id, task, correctness, answers, loss; prompt and completion (spans marked)."""
    with st.container(border=True):
        given = model_answer(query.get("completion", ""))
        reference = reference_answer(query)
        answers = f"model's answer **{widgets.markdown_text(given)}**" if given is not None else "no answer found"
        if reference is not None:
            answers += f", reference **{widgets.markdown_text(reference)}**"
        st.markdown(f"**{widgets.markdown_text(query['id'])}** · task {widgets.markdown_text(query['task'])} · "
                    f"{correctness_badge(query)} · {answers} · {completion_loss(query)}")
        prompt_column, completion_column = st.columns(2)
        prompt_column.caption("Prompt")
        prompt_column.markdown(highlight.render(str(query["prompt"]), []), unsafe_allow_html=True)
        completion_column.caption("Completion (numbered outlines: words the shown documents repeat verbatim)")
        completion_column.markdown(highlight.render(linking.completion, linking.completion_marks()),
                                   unsafe_allow_html=True)


def choose_span(linking: Linking, shown: list[Card], random_texts: tuple[str, ...] = ()) -> None:
    """Pills of the completion's shared spans (?span=N); says how many top, bottom and random documents repeat the
    chosen one (`span_occurrence`)."""
    if not linking.found:
        st.caption(f"No run of {spans.DEFAULT_MIN_WORDS}+ words of the completion occurs verbatim in the shown "
                   "documents.")
        return
    labels = [f"{i}: {spans.span_label(linking.completion, span, 40)}" for i, span in enumerate(linking.found, 1)]
    numbers = list(range(1, len(labels) + 1))
    chosen = url_state.bound(st.pills, "Completion spans found verbatim in the shown documents — choose one",
                             key="queries.span", param="span", default=None, parse=int, options=numbers,
                             what="completion span", format_func=lambda n: labels[n - 1])
    linking.chosen = None if chosen is None else chosen - 1
    if linking.chosen is None:  # a caption either way: the page keeps its layout, so the cards update in place
        st.caption("Choose a span to outline its copies in the shown documents.")
        return
    st.caption(span_occurrence(linking, shown, random_texts))


def span_occurrence(linking: Linking, shown: list[Card], random_texts: tuple[str, ...]) -> str:
    """How often the chosen span occurs in the shown top vs bottom documents vs as many random ones (the chance
    level: a span every document repeats says nothing about the ranking), and which cards hold it."""
    def holding(side: str) -> list[str]:
        return [card.label for card in shown if card.side == side
                and any(linking.holds(text, linking.chosen) for text in card.shown_texts)]

    span = linking.found[linking.chosen]
    top, bottom = holding("top"), holding("bottom")
    drawn = sum(spans.repeats(linking.completion, span, text) for text in random_texts)
    counts = [f"{len(top)} of the {sum(c.side == 'top' for c in shown)} top",
              f"{len(bottom)} of the {sum(c.side == 'bottom' for c in shown)} bottom"]
    if random_texts:
        counts.append(f"{drawn} of {len(random_texts)} random documents")
    return (f"Span {linking.chosen + 1} occurs in " + ", ".join(counts[:-1]) + " and " + counts[-1]
            + (": " + ", ".join(top + bottom) if top or bottom else ""))


def random_document_texts(texts: pd.Series, query_id: str, k: int) -> tuple[str, ...]:
    """k documents drawn uniformly at random, seeded by the query id (a link shows the same draw): the chance
    level for how often a completion span occurs."""
    rng = np.random.default_rng(zlib.crc32(str(query_id).encode("utf-8")))
    columns = rng.choice(len(texts), size=min(k, len(texts)), replace=False)
    return tuple(str(texts.iloc[int(column)]) for column in columns)


@st.cache_data(show_spinner=False, max_entries=64)
def card_tokens(run_key, query_id: str) -> dict[tuple[str, str], widgets.Tokens] | None:
    """(side, doc_id) -> that document's decoded tokens in order and their scores for one query; None when the run
    has no token_scores.parquet. Grouped once per query, not filtered per card."""
    tokens = token_scores(run_key, query_id)
    if tokens is None:
        return None
    ordered = tokens.sort_values(["side", "doc_id", "token_index"], kind="stable")
    return {(str(side), str(doc)): (group["token"].astype(str).tolist(), group["score"].to_numpy(dtype=np.float64))
            for (side, doc), group in ordered.groupby(["side", "doc_id"], sort=False)}


@dataclass(frozen=True)
class Card:
    """One ranked document shown for a query: side ("top" / "bottom"), 1-based rank, score column, text, and its
    per-token scores when the run has them for this (query, side, document)."""
    side: str
    rank: int
    column: int
    score: float
    doc_id: str
    text: str
    tokens: widgets.Tokens | None

    @property
    def label(self) -> str:
        return f"{self.side} #{self.rank}"

    @property
    def shown_texts(self) -> tuple[str, ...]:
        """The texts the card displays: the document, and the decoded tokens of its heatmap."""
        return (self.text,) + (("".join(self.tokens[0]),) if self.tokens else ())


def cards(run, side: str, columns, values, texts: pd.Series,
          tokens: dict[tuple[str, str], widgets.Tokens] | None) -> list[Card]:
    found = []
    for rank, (column, value) in enumerate(zip(columns, values), 1):
        doc_id = str(run.doc_ids[int(column)])
        found.append(Card(side, rank, int(column), float(value), doc_id, str(texts.iloc[int(column)]),
                          None if tokens is None else tokens.get((side, doc_id))))
    return found


def _ranks(shown: list[Card]) -> str:
    """'#11–#50' / '#3, #7–#9': the cards' ranks as ranges."""
    ranges: list[list[int]] = []
    for rank in sorted(card.rank for card in shown):
        if ranges and rank == ranges[-1][1] + 1:
            ranges[-1][1] = rank
        else:
            ranges.append([rank, rank])
    return ", ".join(f"#{a}" if a == b else f"#{a}–#{b}" for a, b in ranges)


def token_coverage(run, tokens, shown: list[Card]) -> str:
    """A sentence on which cards have per-token scores, naming those without and why."""
    missing = [card for card in shown if card.tokens is None]
    if not missing:
        return (f"Every card shown has per-token scores (computed for the top and bottom "
                f"{run.manifest.get('token_topk', '?')} documents of each query by raw score).")
    if tokens is None:
        return ("No card has per-token scores: this run has no token_scores.parquet (e.g. an imported run, or one "
                "made with `--token-topk 0`).")
    where = "; ".join(f"{side} {_ranks([c for c in missing if c.side == side])}"
                      for side in ("top", "bottom") if any(c.side == side for c in missing))
    return (f"Per-token scores were computed for the top and bottom {run.manifest.get('token_topk', '?')} "
            f"documents of each query by raw score (`--token-topk`); {len(missing)} of the {len(shown)} cards shown "
            f"have none ({where}) and show their text unshaded.")


def token_note(run, tokens) -> str:
    if tokens is None:
        return "No per-token scores: this run has no token_scores.parquet."
    depth = run.manifest.get("token_topk", "the first")
    return (f"No per-token scores for this document: they exist for each query's top and bottom {depth} "
            "documents by raw score only.")


def ground_truth_kind(run, column: int) -> str:
    """The document's ground-truth `kind` (the demo corpus: e.g. `procedure:slope`, `distractor:...`), "" when the
    corpus has no such column or no value for the document."""
    if KIND_COLUMN not in run.documents.columns:
        return ""
    value = run.documents[KIND_COLUMN].iloc[column]
    return "" if pd.isna(value) or not str(value).strip() else str(value)


def document_cards(run, query: dict, shown: list[Card], kind_label: str, tokens, linking: Linking,
                   extra_marks=None, footer=None) -> None:
    """Cards for ranked documents of one query; `extra_marks(text)` adds highlights (e.g. a chosen term),
    `footer(card)` draws under each card (e.g. its label choice)."""
    targets = targets_of(query)
    context = context_terms(query)
    note = token_note(run, tokens)
    row = run.query_row(str(query["id"]))
    kind = SCORE_KINDS.get(kind_label, "raw")

    def marks_for(text: str) -> list[highlight.Mark]:
        return highlight.target_marks(text, targets, context) + linking.marks(text) + (
            extra_marks(text) if extra_marks else [])

    for card in shown:
        widgets.document_card(rank=card.rank, doc_id=card.doc_id, score=card.score, score_label=kind_label,
                              source=str(run.doc_sources[card.column]), text=card.text, marks_for=marks_for,
                              tokens=card.tokens, token_note=note, key=f"queries.{card.side}.{card.rank}",
                              corpus_rank=published_view.rank_note(run, row, card.column, kind),
                              ground_truth=ground_truth_kind(run, card.column))
        if footer is not None:
            footer(card)
