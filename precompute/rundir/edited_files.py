"""The small JSON files the researcher edits from the dashboard beside a run (labels.json, query_sets.json):
read with one clear error that leaves the file as it is, written atomically (each module's update holds its
rundir.lock.WaitingFileLock around read, change and write)."""
from __future__ import annotations

import json

from precompute.rundir import files


def read_edited(path: str, error: type[Exception], again: str):
    """The parsed JSON at `path`, or None when there is no file; `error` (one line naming the file, which is kept)
    when it cannot be read or is not JSON. `again`: what fixing or removing the file allows, e.g. "to label again"."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise error(f"{path}: cannot be read ({err})") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid JSON ({err}); the file was left as it is (fix or remove it {again})") from None


def write_edited(path: str, value, error: type[Exception]) -> None:
    """Atomically, or `error` naming the file."""
    try:
        files.write_json(path, value)
    except OSError as err:
        raise error(f"{path}: cannot be written ({err})") from None
