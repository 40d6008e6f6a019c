"""Queries (?q=): a table of all queries to sort and filter (task, correctness, text, an expression); choosing a row
opens the query: prompt and completion, top and bottom documents as cards, per-layer split."""
from __future__ import annotations

import streamlit as st

from dataclasses import replace

from dashboard import charts, highlight, labels_view, query_table, query_view, ranking, score_help, themes_view
from dashboard import url_state, widgets
from dashboard.query_filter import MAX_CHARS, MAX_DEPTH, MAX_LIST, MAX_TEXT, FilterError
from dashboard.run import current_run, document_texts
from dashboard import lds_view, query_sets_view, report_view, validation_view

CHOSEN = "queries.q_chosen"  # a query was chosen this run (row or select box): it stays open whatever the filter
SORTABLE = ["id", "task", "correct", "nats", "n_completion_tokens", "answer", "model_answer"]
FILTER_HELP = ("Over the table's columns, e.g. `task == \"slope\" and not correct`, `nats > 2`, "
               "`answer in [\"3\", \"5\"]`, `contains(completion, \"slope\")`, `len(prompt) > 40`. "
               "Allowed: comparisons, and / or / not, + − × ÷ (on numbers), len(), contains(), isnull(). At most "
               f"{MAX_CHARS:,} characters, {MAX_DEPTH} levels of nesting, texts of {MAX_TEXT} characters and lists "
               f"of {MAX_LIST} items.")


@st.cache_data(show_spinner=False, max_entries=8)
def cached_query_table(run_key, _queries):
    return query_table.query_table(_queries)


def _filters(table):
    """The filter and sort widgets; returns the rows to list."""
    tasks = [query_table.ALL] + sorted(table["task"].unique())
    left, middle, right = st.columns([1, 1, 2])
    task = url_state.bound(left.selectbox, "Task", key="queries.task", param="task", default=query_table.ALL,
                           options=tasks, what="task")
    correctness = url_state.bound(middle.selectbox, "Answered", key="queries.correct", param="correct",
                                  default=query_table.ALL, options=list(query_table.CORRECTNESS),
                                  help="`correct` from the data when given, else the completion's final answer "
                                       "(the last “the answer is 3”, “Therefore … is 3”, “x = 3”) compared with "
                                       "the reference answer; unknown when the query has none")
    search = url_state.bound(right.text_input, "Search id, prompt and completion", key="queries.search",
                             param="search", default="")
    left, middle, right = st.columns([2, 1, 1])
    expression = url_state.bound(left.text_input, "Filter expression", key="queries.where", param="where",
                                 default="", help=FILTER_HELP, placeholder='e.g. task == "slope" and not correct')
    sort = url_state.bound(middle.selectbox, "Sort by", key="queries.sort", param="sort", default="id",
                           options=[c for c in SORTABLE if c in table.columns], what="sort column")
    descending = url_state.bound(right.toggle, "Descending", key="queries.desc", param="desc", default=False,
                                 parse=url_state.parse_bool, allowed=[True, False])
    try:
        shown = query_table.filtered(table, task=task, correctness=correctness, search=search,
                                     expression=expression)
    except FilterError as err:
        st.error(f"Filter expression: {err}", icon=":material/filter_alt_off:")
        shown = query_table.filtered(table, task=task, correctness=correctness, search=search)
    return query_table.sorted_by(shown, sort, descending)


def _query_list(table, shown) -> None:
    """The table; choosing a row makes it the query shown below (same page, one history entry)."""
    st.caption(f"{len(shown):,} of {len(table):,} queries · choose a row (the box at its left) to open it below")
    columns = [c for c in table.columns if c not in ("completion",)] + ["completion"]
    event = st.dataframe(shown[columns], key="queries.table", hide_index=True, width="stretch", height=280,
                         on_select="rerun", selection_mode="single-row", placeholder="",  # missing: blank
                         column_config={"nats": st.column_config.NumberColumn(format="%.3f"),
                                        "correct": st.column_config.CheckboxColumn("correct")})
    chosen = widgets.chosen_row(event, "queries.table")
    if chosen is not None:
        st.session_state["queries.q"] = str(shown["id"].iloc[chosen])
        st.session_state[CHOSEN] = True
        st.session_state.pop("queries.span", None)


def _opened_query(table, shown) -> str:
    """The query shown below the table: the one chosen (a row, the select box, or `?q=` in the URL), else the first
    row of the filtered table, so that the table and the opened query agree; a chosen query outside the filter
    says so."""
    ids = table["id"].tolist()
    first = str(shown["id"].iloc[0]) if len(shown) else ids[0]
    if "q" not in st.query_params and not st.session_state.pop(CHOSEN, False):
        st.session_state["queries.q"] = first        # nothing chosen: follow the filter
    labels = dict(zip(table["id"], table["task"] + " · " + table["id"] + " · " + table["prompt"].str[:90]))
    query_id = url_state.bound(st.selectbox, "Query", key="queries.q", param="q", default=first, options=ids,
                               what="query", format_func=labels.get,
                               on_change=lambda: st.session_state.update({CHOSEN: True}))
    if len(shown) and query_id not in set(shown["id"]):
        st.info(f"The opened query {widgets.markdown_text(query_id)} is outside the filter above ({len(shown):,} "
                f"rows); choose a row to open one of them.", icon=":material/filter_alt:")
    return query_id


def render() -> None:
    run = current_run()
    widgets.page_style()
    st.title("Queries")
    table = cached_query_table(run.key, run.queries)
    shown = _filters(table)
    _query_list(table, shown)
    query_sets_view.section(run, table)  # saved filters and the run's findings recomputed on a chosen set

    query_id = _opened_query(table, shown)
    kinds = list(score_help.SCORE_KINDS)
    left, right = st.columns([2, 1])
    kind_label = url_state.bound(left.radio, "Score", key="queries.score", param="score", default=kinds[0],
                                 options=kinds, horizontal=True, help=score_help.explanation("raw"))
    k = url_state.bound(right.slider, "Documents per side", key="queries.k", param="k", default=5, parse=int,
                        allowed=range(1, 51), min_value=1, max_value=50)
    widgets.score_definitions(kind_label)

    row = run.query_row(query_id)
    query = run.queries.iloc[row].to_dict()
    kind = score_help.SCORE_KINDS[kind_label]
    top, top_values, bottom, bottom_values = ranking.ranked_documents(run.key, run, row, kind, k)
    header, span_choice = st.container(), st.container()
    themes = themes_view.section(run, query, kind)  # distinctive terms and clusters of the top documents
    texts = document_texts(run.key)
    tokens = query_view.card_tokens(run.key, query_id)
    if themes.members is not None:  # only the chosen cluster's documents, at their ranks
        top, top_values, ranks = themes_view.cluster_ranked(run, row, kind, themes, k)
    top_cards = query_view.cards(run, "top", top, top_values, texts, tokens)
    if themes.members is not None:
        top_cards = [replace(card, rank=int(rank)) for card, rank in zip(top_cards, ranks)]
    bottom_cards = query_view.cards(run, "bottom", bottom, bottom_values, texts, tokens)
    shown = top_cards + bottom_cards
    linking = query_view.Linking(str(query["completion"]), tuple(t for card in shown for t in card.shown_texts))
    with span_choice:
        query_view.choose_span(linking, shown, query_view.random_document_texts(texts, query_id, k))
    with header:
        query_view.query_header(query, linking)

    st.markdown(highlight.KEY_HTML, unsafe_allow_html=True)
    st.caption(query_view.token_coverage(run, tokens, shown))  # always one caption: the cards below keep their place
    labels_view.show_write_error()
    labels = labels_view.current(run)

    def label_choice(card) -> None:
        labels_view.card_label(run, labels, card.doc_id, f"queries.{card.side}.{card.rank}")

    top_column, bottom_column = st.columns(2)
    with top_column:
        st.subheader("Most positive (helps the completion)")
        if themes.members is not None:
            st.caption(f"Only {themes.cluster_label} ({len(top_cards)} of its documents among this query's top "
                       f"{themes.depth})")
        query_view.document_cards(run, query, top_cards, kind_label, tokens, linking, themes.marks, label_choice)
    with bottom_column:
        st.subheader("Most negative (works against it)")
        query_view.document_cards(run, query, bottom_cards, kind_label, tokens, linking, themes.marks,
                                  label_choice)

    positive, negative = ranking.layer_sums(run.key, run, row)
    widgets.chart(charts.layer_split(run.layers, positive, negative, f"Per-layer influence of {query_id}"),
                  key="queries.layers", name=f"layers_{query_id}")
    st.caption(f"Export the run's report with this query's {k} + {k} documents ({kind_label} score) and per-layer "
               "chart:")
    report_view.downloads(run, key="queries.query_report", opened={"id": query_id, "kind": kind, "k": k})
    validation_view.query_panel(run, query_id)  # tail-patch check (runs made with `precompute validate`)
    lds_view.query_panel(run, query_id)  # measured vs predicted PBRF Δ (runs made with `precompute counterfactual`)


if __name__ == "__main__":
    render()
