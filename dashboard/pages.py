"""The app's pages (one script each under dashboard/views/, relative to app.py) and links between them that carry state."""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

# name (= url path and module), title, icon
PAGE_SPECS = (
    ("overview", "Overview", ":material/home:"),
    ("queries", "Queries", ":material/help:"),
    ("correlations", "Correlations", ":material/grid_on:"),
    ("magnitude", "Magnitude", ":material/show_chart:"),
    ("sources", "Sources", ":material/source:"),
    ("answers", "Answers", ":material/task_alt:"),
    ("documents", "Documents", ":material/description:"),
    ("compare", "Compare runs", ":material/compare_arrows:"),
)


def page(name: str) -> st.Page:
    spec = next(spec for spec in PAGE_SPECS if spec[0] == name)
    return st.Page(f"views/{name}.py", title=spec[1], icon=spec[2], url_path=name, default=name == "overview")


def all_pages() -> list[st.Page]:
    return [page(spec[0]) for spec in PAGE_SPECS]


def _with_run(params: dict) -> dict:
    run = st.query_params.get("run")
    return {**params, "run": run} if run else dict(params)


def link(name: str, label: str, **params) -> None:
    """A link to another page that opens it with `params` (and the current run) in the URL."""
    st.page_link(page(name), label=label, icon=":material/open_in_new:", query_params=_with_run(params))


def url(name: str, **params) -> str:
    """A relative URL to a page with parameters, for link columns in tables."""
    return f"{name}?{urlencode(_with_run(params))}"
