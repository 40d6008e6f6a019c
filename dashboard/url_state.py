"""Keep each view's state in the URL (st.query_params) so that a link reproduces it.

A widget's value lives in st.session_state[key]. `from_url` seeds it from the URL when the widget has no state
yet (first load, or back on a page) and whenever the URL changed from outside (a followed link); `to_url` writes
the widget's value back.
"""
from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

_SEEN = "_url_seen"


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def from_url(key: str, param: str, default, parse: Callable[[str], object] = str,
             options: Sequence | None = None) -> None:
    """Seed widget state `key` from URL parameter `param` (or `default`), keeping it within `options`."""
    seen = st.session_state.setdefault(_SEEN, {})
    raw = st.query_params.get(param)
    if raw is not None and (seen.get(param) != raw or key not in st.session_state):
        try:
            value = parse(raw)
        except ValueError:
            value = default
        st.session_state[key] = value
        seen[param] = raw
    elif key not in st.session_state:
        st.session_state[key] = default
    if options is not None and st.session_state[key] not in options:
        st.session_state[key] = default


def to_url(param: str, value) -> None:
    """Write a value into the URL (None removes the parameter)."""
    seen = st.session_state.setdefault(_SEEN, {})
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
        seen.pop(param, None)
        return
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if st.query_params.get(param) != text:
        st.query_params[param] = text
    seen[param] = text
