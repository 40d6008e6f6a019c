"""Reusable pieces of the pages: charts and tables with exports, the document card, the token heatmap.

Any text that comes from a run is HTML-escaped before it is rendered with unsafe_allow_html."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import pages

_RED = (214, 39, 40)
_TEAL = (20, 163, 154)
PREVIEW_CHARS = 600


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
                            selection_mode="points", width="stretch")
    row = st.container(horizontal=True, gap="small")
    downloads = (("PNG", "png", "image/png", lambda: figure_image(fig, "png")),
                 ("SVG", "svg", "image/svg+xml", lambda: figure_image(fig, "svg")),
                 ("HTML", "html", "text/html", lambda: figure_html(fig)))
    for label, extension, mime, render in downloads:
        row.download_button(label, data=render, file_name=f"{name}.{extension}", mime=mime,
                               key=f"{key}.{extension}", on_click="ignore", icon=":material/download:",
                               type="tertiary")
    return event


def table(frame: pd.DataFrame, key: str, name: str, **dataframe_args) -> None:
    """A table with a CSV download (written only when clicked)."""
    st.dataframe(frame, key=key, width="stretch", hide_index=True, **dataframe_args)
    st.download_button("CSV", data=lambda: frame.to_csv(index=False), file_name=f"{name}.csv", mime="text/csv",
                       key=f"{key}.csv", on_click="ignore", icon=":material/download:", type="tertiary")


def _colour(score: float, scale: float) -> str:
    if scale <= 0 or not np.isfinite(score):
        return "transparent"
    alpha = min(1.0, abs(score) / scale) * 0.85
    red, green, blue = _RED if score > 0 else _TEAL
    return f"rgba({red},{green},{blue},{alpha:.2f})"


def _escape(text: str) -> str:
    """HTML-escaped text on one line (newlines as <br>): an HTML block without blank lines stays raw HTML, so
    markdown in the text (links, emphasis, headings) is not interpreted either."""
    return html.escape(text).replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def token_heatmap_html(tokens: list[str], scores: np.ndarray) -> str:
    """Tokens as escaped spans shaded red (positive) / teal (negative) by their share of the score."""
    scale = float(np.max(np.abs(scores))) if len(scores) else 0.0
    spans = [
        f'<span title="{score:+.3g}" style="background:{_colour(float(score), scale)}">{_escape(token)}</span>'
        for token, score in zip(tokens, scores)
    ]
    return f'<div class="token-heatmap" style="white-space:pre-wrap;line-height:1.6">{"".join(spans)}</div>'


def escaped_text_html(text: str) -> str:
    return f'<div style="white-space:pre-wrap">{_escape(text)}</div>'


def document_card(*, rank: int, doc_id: str, score: float, score_label: str, source: str, text: str,
                  badges: list[str], tokens: pd.DataFrame | None, key: str) -> None:
    """A bordered card for one ranked document: rank, score, source, badges, text (heatmap when available)."""
    with st.container(border=True):
        head, link = st.columns([3, 1])
        badge_text = " ".join(f":green-badge[{html.escape(b)}]" for b in badges)
        head.markdown(f"**#{rank}** · {score_label} **{score:+.4g}** · :gray-badge[{markdown_text(source)}] "
                      f"{badge_text}")
        with link:
            pages.link("documents", "document", doc=doc_id)
        if tokens is not None and len(tokens):
            ordered = tokens.sort_values("token_index")
            body = token_heatmap_html(ordered["token"].tolist(), ordered["score"].to_numpy())
        else:
            body = escaped_text_html(text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else ""))
        st.markdown(body, unsafe_allow_html=True)
        if len(text) > PREVIEW_CHARS or (tokens is not None and len(tokens)):
            with st.expander("Full text"):
                st.markdown(escaped_text_html(text), unsafe_allow_html=True)
        st.caption(f"document {markdown_text(doc_id)}")


def markdown_text(text: str) -> str:
    """Text for Streamlit markdown without HTML: escape HTML and markdown control characters."""
    escaped = html.escape(str(text))
    for char in "\\`*_[]{}()#+!|~$:":
        escaped = escaped.replace(char, "\\" + char)
    return escaped
