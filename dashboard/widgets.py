"""Reusable pieces of the pages: charts and tables with exports, rows that open other pages, the document card,
score explanations.

Any text that comes from a run is HTML-escaped before it is rendered with unsafe_allow_html."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import column_labels, highlight, pages, score_help

PREVIEW_CHARS = 600
Tokens = tuple[list[str], np.ndarray]  # a document's decoded tokens in order, and each token's score
_NOUNS = {"queries": "query", "documents": "document"}  # what a row opens on each page
DOCS = Path(__file__).resolve().parent.parent / "docs"


@st.cache_resource(show_spinner="Starting the image exporter…")
def _kaleido_server() -> bool:
    """One kaleido (headless chromium) server for the whole app, started on the first image export."""
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)
    return True


def figure_image(fig: go.Figure, fmt: str) -> bytes:
    """PNG or SVG bytes of a figure, rendered by the shared kaleido server."""
    _kaleido_server()
    return fig.to_image(format=fmt, width=1200, height=fig.layout.height or 500, scale=2 if fmt == "png" else 1)


def figure_html(fig: go.Figure) -> str:
    """A self-contained HTML page of the figure (plotly.js inlined)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def chart(fig: go.Figure, key: str, name: str, selectable: bool = False):
    """A plotly chart with PNG / SVG / HTML downloads (rendered only when clicked).

    With `selectable`, clicking a point reruns the app and the selection event is returned."""
    event = st.plotly_chart(fig, key=key, on_select="rerun" if selectable else "ignore",
                            selection_mode="points", width="stretch", config={"displaylogo": False})
    row = st.container(horizontal=True, gap="small")
    downloads = (("PNG", "png", "image/png", lambda: figure_image(fig, "png")),
                 ("SVG", "svg", "image/svg+xml", lambda: figure_image(fig, "svg")),
                 ("HTML", "html", "text/html", lambda: figure_html(fig)))
    for label, extension, mime, render in downloads:
        row.download_button(label, data=render, file_name=f"{name}.{extension}", mime=mime,
                            key=f"{key}.{extension}", on_click="ignore", icon=":material/download:",
                            type="tertiary")
    return event


def chosen_row(event, key: str) -> int | None:
    """The table row the user has just chosen (a new selection since the last run), else None."""
    rows = list(event.selection.rows) if event is not None and event.selection else []
    marker = f"{key}.consumed"
    if not rows:
        st.session_state.pop(marker, None)
        return None
    if st.session_state.get(marker) == rows[0]:
        return None
    st.session_state[marker] = rows[0]
    return rows[0]


def table(frame: pd.DataFrame, key: str, name: str, opens: tuple[str, str, str] | None = None,
          export: pd.DataFrame | None = None, **dataframe_args):
    """A table with a CSV download (written only when clicked) of `frame`, or of `export` when the shown table
    formats its numbers as text (e.g. "0.039 [0.031, 0.048]"): a CSV holds numbers, one column each, under the
    frame's own column names. On screen the columns carry readable labels and missing values or "none" sentinels
    are blank (dashboard.column_labels).

    With `opens=(page, param, column)`, choosing a row opens `page` with `?param=` the row's `column`, in this tab."""
    selection = dict(on_select="rerun", selection_mode="single-row") if opens else {}
    dataframe_args["column_config"] = column_labels.labelled_config(frame.columns,
                                                                    dataframe_args.get("column_config"))
    dataframe_args.setdefault("placeholder", "")
    event = st.dataframe(column_labels.with_none_blank(frame), key=key, width="stretch", hide_index=True,
                         **selection, **dataframe_args)
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    exported = frame if export is None else export
    row.download_button("CSV", data=lambda: exported.to_csv(index=False), file_name=f"{name}.csv", mime="text/csv",
                        key=f"{key}.csv", on_click="ignore", icon=":material/download:", type="tertiary")
    if opens:
        row.caption(f"Choose a row (the box at its left) to open its {_NOUNS.get(opens[0], 'page')}.")
        chosen = chosen_row(event, key)
        if chosen is not None:
            target, param, column = opens
            pages.go(target, **{param: str(frame[column].iloc[chosen])})
    return event


def escaped_text_html(text: str) -> str:
    return f'<div style="white-space:pre-wrap">{highlight.escape(text)}</div>'


def token_heatmap_html(tokens: list[str], scores: np.ndarray, marks: list | None = None) -> str:
    """Tokens as escaped spans shaded red (positive) / teal (negative) by their share of the score."""
    text, layout = highlight.token_layout(tokens, scores)
    scale = float(np.max(np.abs(scores))) if len(scores) else 0.0
    return highlight.render(text, marks or [], layout, scale).replace('class="ie-text"',
                                                                       'class="ie-text token-heatmap"', 1)


def page_style() -> None:
    """The CSS of highlights and legends (once per page run)."""
    st.markdown(highlight.STYLE, unsafe_allow_html=True)


def score_definitions(kind_label: str | None = None) -> None:
    """What the scores mean (all kinds, the chosen one first), and docs/normalisations.md when present."""
    with st.expander("What do the scores mean?", icon=":material/info:"):
        if kind_label is not None:
            st.markdown(score_help.explanation(kind_label))
            rest = [text for label, text in score_help.MEANING.items() if label != kind_label]
            st.markdown("\n\n".join(rest))
        else:
            st.markdown(score_help.all_explanations())
        st.caption(score_help.TOKEN_SCORES)
        document = DOCS / "normalisations.md"
        if document.is_file():
            st.divider()
            st.markdown(document.read_text(encoding="utf-8"))


def document_card(*, rank: int, doc_id: str, score: float, score_label: str, source: str, text: str,
                  marks_for, tokens: Tokens | None, token_note: str, key: str, corpus_rank: str = "",
                  ground_truth: str = "") -> None:
    """A bordered card for one ranked document: rank, score, source, ground-truth kind (the documents' `kind`
    column, when the corpus has one), badges, text with highlights.

    `marks_for(text)` gives the highlights of a shown text; with `tokens` the text is the per-token heatmap
    (with its colour legend), else the text's first PREVIEW_CHARS characters and `token_note` says why."""
    full_marks = marks_for(text)
    with st.container(border=True):
        if tokens is not None and len(tokens[0]):
            pieces, scores = tokens
            shown_text = "".join(pieces)
            scale = float(np.max(np.abs(scores)))
            body = highlight.legend_html(scale, "token share of the raw score") + token_heatmap_html(
                pieces, scores, marks_for(shown_text))
        else:
            shown_text = text[:PREVIEW_CHARS]
            long = len(text) > PREVIEW_CHARS
            marks = highlight.clipped(full_marks, len(shown_text))
            body = highlight.render(shown_text + ("…" if long else ""), marks) + (
                f'<div class="ie-key">{html.escape(token_note)}</div>')
        st.markdown(f"**#{rank}** · {score_label} **{score:+.4g}** · {card_badges(source, full_marks, ground_truth)}"
                    + (f" · {markdown_text(corpus_rank)}" if corpus_rank else ""))  # imported runs
        st.markdown(body, unsafe_allow_html=True)
        if shown_text.strip() != text.strip():  # the card shows less (long or truncated document) or other text
            with st.expander("Full text"):
                st.markdown(highlight.render(text, full_marks), unsafe_allow_html=True)
        pages.link("documents", f"document {doc_id}", doc=doc_id)


def card_badges(source: str, marks: list, ground_truth: str = "") -> str:
    """A card's badges: its source, its ground-truth kind when known, then what the marks found."""
    found = " ".join(f":green-badge[{markdown_text(b)}]" for b in highlight.badges(marks))
    kind = f":blue-badge[kind {markdown_text(ground_truth)}] " if ground_truth else ""
    return f":gray-badge[{markdown_text(source)}] {kind}{found}"


def markdown_text(text: str) -> str:
    """Text for Streamlit markdown without HTML: escape HTML and markdown control characters."""
    escaped = html.escape(str(text), quote=False)  # quotes are plain text here, not attribute values
    for char in "\\`*_[]{}()#+!|~$:":
        escaped = escaped.replace(char, "\\" + char)
    return escaped
