"""Saved query sets: RUN/query_sets.json (layout.QUERY_SETS), beside the run's files, never inside them.

    {"format": 1, "revision": 3, "sets": [{"name": "slope, correct only",
                                           "expression": "task == \"slope\" and correct == True"}, ...]}

A set is a name and a filter expression over the Queries page's table (the dashboard's filter language,
dashboard/query_filter.py, which checks the expression when it is used; this file only stores it). Every change is
one locked read-modify-write, as for labels (precompute/rundir/labels.py): an exclusive flock on
RUN/query_sets.lock, the file read and checked, changed and moved into place atomically, so two browser tabs never
lose each other's sets. A file that does not pass the check is never overwritten: every operation raises
QuerySetsError naming the file and the field, and the file stays as it is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from precompute.rundir import layout
from precompute.rundir.edited_files import read_edited, write_edited
from precompute.rundir.lock import WaitingFileLock

FORMAT = 1
MAX_NAME_CHARS = 80
MAX_SETS = 200


class QuerySetsError(Exception):
    """A query-sets file, name or change that cannot be used; the message is written for a person."""


@dataclass(frozen=True)
class QuerySet:
    name: str
    expression: str


@dataclass(frozen=True)
class QuerySets:
    sets: tuple[QuerySet, ...] = ()
    revision: int = 0

    def named(self, name: str) -> QuerySet | None:
        return next((found for found in self.sets if found.name == name), None)

    def document(self) -> dict:
        return {"format": FORMAT, "revision": self.revision,
                "sets": [{"name": found.name, "expression": found.expression} for found in self.sets]}


def query_sets_path(run_path: str) -> str:
    return os.path.join(str(run_path), layout.QUERY_SETS)


def checked_name(name) -> str:
    """The name stripped; QuerySetsError when it is empty or longer than MAX_NAME_CHARS."""
    if not isinstance(name, str) or not name.strip():
        raise QuerySetsError("a query set needs a name")
    if len(name.strip()) > MAX_NAME_CHARS:
        raise QuerySetsError(f"a query set's name has at most {MAX_NAME_CHARS} characters")
    return name.strip()


def _checked(value, path: str) -> QuerySets:
    def bad(what: str) -> QuerySetsError:
        return QuerySetsError(f"{path}: {what}; the file was left as it is (fix or remove it to save sets again)")
    if not isinstance(value, dict):
        raise bad("not a JSON object")
    if value.get("format") != FORMAT:
        raise bad(f"field `format` is {value.get('format')!r}, expected {FORMAT}")
    revision = value.get("revision", 0)
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise bad("field `revision` must be an integer")
    entries = value.get("sets")
    if not isinstance(entries, list) or len(entries) > MAX_SETS:
        raise bad(f"field `sets` must be a list of at most {MAX_SETS} sets")
    found = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("expression"), str):
            raise bad(f"field `sets`, item {position}: needs `name` and `expression` texts")
        try:
            name = checked_name(entry.get("name"))
        except QuerySetsError as err:
            raise bad(f"field `sets`, item {position}: {err}") from None
        if any(other.name == name for other in found):
            raise bad(f"field `sets`: the name {name!r} is used twice")
        found.append(QuerySet(name, entry["expression"]))
    return QuerySets(tuple(found), revision)


def read_query_sets(run_path: str) -> QuerySets:
    """The run's saved sets (none when there is no file); QuerySetsError if the file is not valid."""
    path = query_sets_path(run_path)
    value = read_edited(path, QuerySetsError, "to save sets again")
    return QuerySets() if value is None else _checked(value, path)


def update_query_sets(run_path: str, change) -> QuerySets:
    """Apply `change(QuerySets) -> tuple of QuerySet` under the lock to the file's current content and write the
    result atomically (revision + 1); returns what was written. A file that does not pass the check is not
    touched."""
    path = query_sets_path(run_path)
    with WaitingFileLock(os.path.join(str(run_path), layout.QUERY_SETS_LOCK), QuerySetsError, "query sets"):
        current = read_query_sets(run_path)
        changed = QuerySets(tuple(change(current)), current.revision + 1)
        _checked(changed.document(), path)   # never write what could not be read back
        write_edited(path, changed.document(), QuerySetsError)
        return changed


def save_query_set(run_path: str, name: str, expression: str) -> QuerySets:
    """Save (or replace) the set `name`; a replaced set keeps its place in the list."""
    query_set = QuerySet(checked_name(name), str(expression).strip())

    def change(current: QuerySets):
        if current.named(query_set.name) is None:
            return (*current.sets, query_set)
        return tuple(query_set if found.name == query_set.name else found for found in current.sets)
    return update_query_sets(run_path, change)


def delete_query_set(run_path: str, name: str) -> QuerySets:
    """Remove the set `name` (nothing happens when there is none)."""
    return update_query_sets(run_path, lambda current: tuple(s for s in current.sets if s.name != name))
