"""Which run the app shows: `-- --run DIR` (repeatable) and run directories found under runs/, picked in the
sidebar and kept in the URL as ?run=. Only offered runs can be opened from a URL."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st

from dashboard import pages, url_state
from precompute.rundir import layout

DEFAULT_RUN = "runs/demo"
RUNS_ROOT = Path("runs")
_KEY = "app.run"


def cli_runs(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--run", action="append", default=[])
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.run


def found_runs(root: Path = RUNS_ROOT) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(str(child) for child in root.iterdir() if (child / layout.MANIFEST).is_file())


def run_choices() -> list[str]:
    """Runs given on the command line first, then those under runs/ (runs/demo first); runs/demo when none."""
    found = sorted(found_runs(), key=lambda run: run != DEFAULT_RUN)
    choices = list(dict.fromkeys(cli_runs() + found))
    return choices or [DEFAULT_RUN]


def pick_run() -> str:
    """The sidebar run picker; returns the chosen run directory and keeps it in the URL (?run=)."""
    choices = run_choices()
    asked = st.query_params.get("run")
    if asked is not None and asked not in choices:
        st.sidebar.warning(f"Run `{asked}` is not offered here; start the app with `-- --run {asked}` to open it.")
        url_state.mark_reported("run")
    chosen = url_state.bound(st.sidebar.selectbox, "Run", key=_KEY, param="run", default=choices[0],
                             options=choices, format_func=display_name,
                             help="Runs given with `--run` and those under runs/")
    st.session_state[pages.RUN_PARAM] = None if chosen == choices[0] else chosen  # links carry it
    return chosen


def display_name(run: str) -> str:
    """A run directory as a person reads it: relative to the working directory when inside it."""
    path = Path(run)
    try:
        return str(path.absolute().relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(path) if not path.is_absolute() else f"{path.name} ({path.parent})"
