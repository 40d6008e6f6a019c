"""Each view's state lives in the URL (st.query_params), so that a link or Back reproduces it.

`bound(widget, label, key=..., param=..., default=...)` binds one widget to one URL parameter:
- the widget's value comes from the URL when the URL changed since this session last wrote it (a followed link,
  Back / Forward, a reload, a page opened from the sidebar); otherwise the widget keeps its session state;
- an unknown value in the URL (an id that is not among the options, a number that does not parse) shows a
  warning naming the parameter, and the default is used;
- values that differ from the default are collected during the script run and written to the URL once, at its
  end (`finish_run`, called by app.py): one user action makes one browser-history entry, so Back goes back.
  Defaults are not written, so opening a page adds nothing to the history.

`from_url` / `to_url` are the same two halves for state that is not a single widget.
"""
from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

_WRITTEN = "_url.written"  # (page, params) this session last wrote to or read from the URL
_PENDING = "_url.pending"  # param -> text (None: leave out) wanted in the URL at the end of this run
_OUTSIDE = "_url.outside"  # the URL changed from outside since the last run (read it, do not keep session state)
_UNKNOWN = "_url.unknown"  # params whose URL value was unknown, already reported this run
_LAST = "_url.last"  # page -> the parameters it had when last shown in this session


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def as_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _current() -> dict[str, str]:
    return {name: st.query_params[name] for name in st.query_params}


def begin_run(page: str) -> None:
    """Called by app.py before a page runs: is the URL new to this session (link, Back, reload, other page)?"""
    st.session_state[_OUTSIDE] = st.session_state.get(_WRITTEN) != (page, _current())
    st.session_state[_PENDING] = {}
    st.session_state[_UNKNOWN] = set()
    st.session_state["_url.page"] = page


def finish_run() -> None:
    """Called by app.py after the page ran (also after st.stop): write the wanted parameters in one update.

    Parameters no widget bound in this run stay as they are."""
    pending = st.session_state.get(_PENDING, {})
    current = _current()
    wanted = {name: text for name, text in current.items() if name not in pending}
    wanted.update({name: text for name, text in pending.items() if text is not None})
    if wanted != current:
        st.query_params.from_dict(wanted)
    page = st.session_state.get("_url.page")
    st.session_state[_WRITTEN] = (page, wanted)
    st.session_state.setdefault(_LAST, {})[page] = {name: text for name, text in wanted.items() if name != "run"}


def last_state(page: str) -> dict[str, str]:
    """The URL parameters `page` had when this session last showed it (without the run): sidebar links reopen
    a page as it was left."""
    return dict(st.session_state.get(_LAST, {}).get(page, {}))


def url_is_new() -> bool:
    """True when this run's URL was not written by this session (then the URL decides the view's state)."""
    return bool(st.session_state.get(_OUTSIDE, True))


def warn_unknown(param: str, raw: str, what: str | None = None) -> None:
    """One warning per parameter and run: the URL asked for something this run does not have."""
    reported = st.session_state.setdefault(_UNKNOWN, set())
    if param in reported:
        return
    reported.add(param)
    st.warning(f"The link asks for {what or param} `{raw}` (`?{param}=`), which this run does not have; "
               "showing the default instead.", icon=":material/link_off:")


def from_url(key: str, param: str, default, parse: Callable[[str], object] = str,
             options: Sequence | None = None, what: str | None = None) -> None:
    """Seed session state `key` from URL parameter `param` when the URL is new (else keep it), within `options`."""
    raw = st.query_params.get(param)
    if url_is_new() or key not in st.session_state:
        value = default
        if raw is not None:
            try:
                value = parse(raw)
            except ValueError:
                warn_unknown(param, raw, what)
            else:
                if options is not None and value not in options:
                    warn_unknown(param, raw, what)
                    value = default
        st.session_state[key] = value
    if options is not None and st.session_state[key] not in options:
        st.session_state[key] = default


def to_url(param: str, value, default=None) -> None:
    """Want `value` in the URL at the end of this run (left out when None or equal to `default`)."""
    pending = st.session_state.setdefault(_PENDING, {})
    pending[param] = None if value is None or value == default else as_text(value)


def bound(widget: Callable, label: str, *, key: str, param: str, default, parse: Callable[[str], object] = str,
          options: Sequence | None = None, what: str | None = None, **widget_args):
    """A Streamlit widget (`st.selectbox`, `st.radio`, `column.slider`, ...) whose value is URL parameter `param`.

    `options` are passed to the widget as its first argument after the label when the widget takes options
    (selectbox, radio, segmented_control, pills); `allowed` in widget_args restricts values without passing them."""
    allowed = widget_args.pop("allowed", options)
    from_url(key, param, default, parse=parse, options=allowed, what=what)
    value = widget(label, options, key=key, **widget_args) if options is not None else widget(label, key=key,
                                                                                           **widget_args)
    to_url(param, value, default)
    return value


def mark_reported(param: str) -> None:
    """A caller has already explained the unknown value of `param`; no second warning."""
    st.session_state.setdefault(_UNKNOWN, set()).add(param)
