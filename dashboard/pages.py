"""The app's pages (one script each under dashboard/views/, relative to app.py) and in-app links between them.

Every link stays in the browser tab and in the Streamlit session (st.page_link / st.switch_page): no new tab,
no new session, the caches and other pages' state are kept. Links carry the current run (`?run=`) when it is
not the default one."""
from __future__ import annotations

import streamlit as st

from dashboard import url_state

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
    ("ask", "Ask", ":material/manage_search:"),
)


def page(name: str) -> st.Page:
    spec = next(spec for spec in PAGE_SPECS if spec[0] == name)
    return st.Page(f"views/{name}.py", title=spec[1], icon=spec[2], url_path=name, default=name == "overview")


def all_pages() -> list[st.Page]:
    return [page(spec[0]) for spec in PAGE_SPECS]


RUN_PARAM = "_pages.run"  # the chosen run as written in the URL (None: the default run)


def _with_run(params: dict) -> dict:
    run = st.session_state.get(RUN_PARAM)
    params = {name: str(value) for name, value in params.items() if value is not None}
    return {**params, "run": run} if run else params


def sidebar_links(container) -> None:
    """The page list (instead of Streamlit's own navigation, which drops the URL's parameters): links that carry
    the chosen run, so that moving between pages never silently switches back to the default run, and reopen
    each page as this session left it (its query, filters, ...)."""
    for name, title, icon in PAGE_SPECS:
        state = url_state.last_state(name) or url_state.last_state("" if name == "overview" else name)
        container.page_link(page(name), label=title, icon=icon, query_params=_with_run(state), width="stretch")


def link(name: str, label: str, **params) -> None:
    """A link to another page (same tab, same session) that opens it with `params` (and the current run)."""
    st.page_link(page(name), label=label, icon=":material/arrow_forward:", query_params=_with_run(params))


def go(name: str, **params) -> None:
    """Open another page now (e.g. when a table row is chosen), in this tab and session."""
    st.switch_page(page(name), query_params=_with_run(params))
