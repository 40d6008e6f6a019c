"""A chosen completion span is counted in the shown top vs bottom documents vs as many random ones, so that a span
every document repeats reads as saying nothing about the ranking."""
import pandas as pd

from dashboard import spans
from dashboard.query_view import Card, Linking, random_document_texts, span_occurrence

COMPLETION = " The change in y is 9 - 3 = 6. The slope is 6 / 2 = 3."
TOP = ["the change in y is what we want", "so the slope is 6 / 2 = 3 here", "the change in y is 9 - 3 = 6"]
BOTTOM = ["cooking notes", "the change in y is big"]
RANDOM = ("the change in y is small", "nothing", "Slope is 6 / 2 = 3.", "nothing either")


def cards(side, texts):
    return [Card(side, rank, rank, 1.0, f"{side}{rank}", text, None) for rank, text in enumerate(texts, 1)]


def test_repeats_agrees_with_the_linked_spans():
    documents = TOP + BOTTOM + list(RANDOM)
    shared = spans.shared_spans(COMPLETION, documents)
    for number, span in enumerate(shared.found):
        assert [spans.repeats(COMPLETION, span, text) for text in documents] == [
            bool(linked[number]) for linked in shared.linked]


def test_span_occurrence_counts_top_bottom_and_random():
    shown = cards("top", TOP) + cards("bottom", BOTTOM)
    linking = Linking(COMPLETION, tuple(text for card in shown for text in card.shown_texts))
    labels = [COMPLETION[s.start:s.end] for s in linking.found]
    assert labels == ["The change in y is 9 - 3 = 6", "The slope is 6 / 2 = 3"]
    linking.chosen = 0
    assert span_occurrence(linking, shown, RANDOM) == (
        f"Span {linking.chosen + 1} occurs in 2 of the 3 top, 1 of the 2 bottom and 1 of 4 random documents: "
        "top #1, top #3, bottom #2")
    linking.chosen = 1
    assert span_occurrence(linking, shown, ()) == (
        f"Span {linking.chosen + 1} occurs in 1 of the 3 top and 0 of the 2 bottom: top #2")


def test_random_documents_are_drawn_once_per_query():
    texts = pd.Series([f"document {i}" for i in range(100)])
    drawn = random_document_texts(texts, "slope-03", 5)
    assert drawn == random_document_texts(texts, "slope-03", 5) and len(set(drawn)) == 5
    assert drawn != random_document_texts(texts, "slope-04", 5)
    assert len(random_document_texts(texts.iloc[:3], "slope-03", 5)) == 3


def test_the_queries_page_states_the_counts_of_the_chosen_span(app_args, run_dir):
    from tests.dashboard.test_pages import assert_clean, open_page

    app_args(run_dir)
    at = open_page("queries", q="q0005", span="1", k="4")      # conftest plants q0005's top document's words
    assert_clean(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Span 1 occurs in"))
    assert " of the 4 top, " in caption and " of the 4 bottom and " in caption and " of 4 random documents" in caption
    assert "top #1" in caption
