"""Saved query sets on the Queries page: the table's filter saved under a name (RUN/query_sets.json, see
precompute/rundir/query_sets.py) and the run's findings recomputed on the set's queries
(precompute/analysis/query_subset.py), shown like the overview's (findings_view.show_findings).

The chosen set is in the URL: `?set=` its name and `?set_where=` its filter expression, so a link alone reproduces
the set's findings, also where the set is not saved. Choosing a saved set puts its filter into the table; saving
turns the table's current choices (task, answered, search and expression) into one expression
(query_table.filter_expression)."""
from __future__ import annotations

import streamlit as st

from dashboard import findings_view, query_table, report_view, url_state, widgets
from dashboard.query_filter import FilterError, filter_rows
from dashboard.run import Run, RunKey
from precompute import rundir
from precompute.analysis.inputs import AnalysisInputs, load_inputs
from precompute.analysis.query_subset import QuerySubsetError, subset_findings
from precompute.rundir import query_sets

NONE = "(no set)"
ACTIVE = "queries.set"             # the chosen set's name, ?set=
DEFINITION = "queries.set_where"   # the chosen set's filter expression, ?set_where=
NAME = "queries.set_name"
ERROR = "queries.set_error"
TABLE_FILTER = {"queries.task": query_table.ALL, "queries.correct": query_table.ALL, "queries.search": "",
                "queries.where": ""}   # the table's filter widgets and their defaults (views/queries.py)
SCOPE = ("Each finding recomputed on the set's queries alone, as if they were the whole run (same seed and "
         "resamples; Holm's adjustment over the set's findings). Tail-patch and LDS findings are not recomputed for "
         "a set: their files hold every query. A finding whose groups the set lacks (e.g. no factual queries) is "
         "not shown.")


@st.cache_resource(show_spinner="Reading the run for the analysis…", max_entries=2)
def analysis_inputs(run_key: RunKey) -> AnalysisInputs:
    """What the analysis reads (load_inputs), once per run version; shared read-only."""
    return load_inputs(rundir.RunDir(run_key[0]))


@st.cache_data(show_spinner="Recomputing the findings on the set…", max_entries=16)
def set_findings(run_key: RunKey, query_ids: tuple[str, ...]) -> dict:
    return subset_findings(analysis_inputs(run_key), list(query_ids))


def _show_in_table(expression: str) -> None:
    st.session_state.update({**TABLE_FILTER, "queries.where": expression})


def _table_expression() -> str:
    state = st.session_state
    return query_table.filter_expression(**{
        "task": state.get("queries.task", query_table.ALL), "correctness": state.get("queries.correct",
                                                                                      query_table.ALL),
        "search": state.get("queries.search", ""), "expression": state.get("queries.where", "")})


def _save(run_path: str) -> None:
    expression = _table_expression()
    try:
        name = query_sets.checked_name(st.session_state.get(NAME, ""))
        query_sets.save_query_set(run_path, name, expression)
    except query_sets.QuerySetsError as err:
        st.session_state[ERROR] = str(err)
        return
    st.session_state.update({ACTIVE: name, DEFINITION: expression, NAME: ""})
    _show_in_table(expression)


def _choose(saved: query_sets.QuerySets) -> None:
    found = saved.named(st.session_state[ACTIVE])
    st.session_state[DEFINITION] = found.expression if found else ""
    if found:
        _show_in_table(found.expression)


def _delete(run_path: str) -> None:
    try:
        query_sets.delete_query_set(run_path, st.session_state[ACTIVE])
    except query_sets.QuerySetsError as err:
        st.session_state[ERROR] = str(err)
        return
    st.session_state.update({ACTIVE: NONE, DEFINITION: ""})


def _saved(run: Run) -> query_sets.QuerySets | None:
    """The run's saved sets, or None after showing why they cannot be read (the file is kept as it is)."""
    try:
        return query_sets.read_query_sets(str(run.path))
    except query_sets.QuerySetsError as err:
        st.error(f"**Saved query sets cannot be used.** {err}", icon=":material/playlist_remove:")
        return None


def _controls(run: Run, saved: query_sets.QuerySets | None) -> str:
    """Name + save, the saved sets (and a set from a link), delete; returns the chosen set's name."""
    url_state.from_url(ACTIVE, "set", NONE)
    url_state.from_url(DEFINITION, "set_where", "")
    names = [NONE] + ([s.name for s in saved.sets] if saved else [])
    if st.session_state[ACTIVE] not in names:
        names.append(st.session_state[ACTIVE])   # from a link: not saved beside this run
    name, save, choice, delete = st.columns([2, 1, 2, 1], vertical_alignment="bottom")
    name.text_input("Save the table's filter as a query set", key=NAME, max_chars=query_sets.MAX_NAME_CHARS,
                    placeholder="name, e.g. slope, correct only")
    save.button("Save set", key="queries.set_save", on_click=_save, args=(str(run.path),), disabled=saved is None,
                icon=":material/bookmark_add:")
    active = choice.selectbox("Query set (findings on its queries)", names, key=ACTIVE, on_change=_choose,
                              args=(saved or query_sets.QuerySets(),))
    delete.button("Delete set", key="queries.set_delete", on_click=_delete, args=(str(run.path),),
                  disabled=saved is None or saved.named(active) is None, icon=":material/delete:")
    error = st.session_state.pop(ERROR, None)
    if error:
        st.error(f"**The query set was not saved.** {error}", icon=":material/playlist_remove:")
    return active


def section(run: Run, table) -> None:
    """The query-set controls and, for the chosen set, its findings with a report export."""
    saved = _saved(run)
    active = _controls(run, saved)
    found = saved.named(active) if saved else None
    definition = st.session_state[DEFINITION] or (found.expression if found else "")
    url_state.to_url("set", active, NONE)
    url_state.to_url("set_where", definition if active != NONE else None, "")
    if active == NONE:
        st.caption("Save the table's filter under a name to see the run's findings recomputed on its queries "
                   "(e.g. slope, correct only); the set and its filter go into the link.")
        return
    if found is not None and found.expression != definition:
        st.info(f"The link's filter for {widgets.markdown_text(active)} differs from the one saved beside this run "
                f"({widgets.markdown_text(found.expression)}); the findings below use the link's.")
    try:
        ids = tuple(filter_rows(table, definition)["id"].astype(str))
        findings = set_findings(run.key, ids)
    except (FilterError, QuerySubsetError) as err:
        st.error(f"Query set {widgets.markdown_text(active)}: {err}", icon=":material/filter_alt_off:")
        return
    with st.expander(f"Findings on the query set “{active}” ({len(ids):,} of {len(table):,} queries)",
                     expanded=True):
        st.caption(f"Filter: {widgets.markdown_text(definition or '(none: every query)')}. {SCOPE}")
        if findings["findings"]:
            findings_view.show_findings(run.key, findings)
        else:
            st.info("No finding can be computed on these queries alone: each compares groups the set lacks (e.g. "
                    "reasoning against factual queries, or needs a task's documents to be labelled).",
                    icon=":material/info:")
        report_view.downloads(run, {"name": active, "expression": definition, "query_ids": list(ids)},
                              key="queries.report")
