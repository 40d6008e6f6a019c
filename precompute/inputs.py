"""Read and validate the corpus and the queries; every problem is one UserInputError naming file, line, field.

Corpus: .jsonl (one JSON object per line) or .parquet, with `id`, `text` and optional `source`.
Queries: .jsonl with `id`, `task`, `prompt`, `completion` and optional `answer`, `steps` (a list); any other
field is kept and written back to the run's queries.jsonl.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pandas as pd

from precompute.errors import UserInputError

UNKNOWN_SOURCE = "unknown"
QUERY_FIELDS = ("id", "task", "prompt", "completion")


@dataclass
class Corpus:
    path: str
    ids: list[str]
    texts: list[str]
    sources: list[str]
    lines: list[int]          # 1-based line (jsonl) or row (parquet) of each document, for messages

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, index: int) -> str:
        unit = "row" if self.path.endswith(".parquet") else "line"
        return f"{self.path}: {unit} {self.lines[index]}"


@dataclass
class Queries:
    path: str
    records: list[dict]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.records)


def check_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise UserInputError(f"{path}: {what} file not found")
    if os.path.isdir(path):
        raise UserInputError(f"{path}: {what} must be a file, not a directory")
    if os.path.getsize(path) == 0:
        raise UserInputError(f"{path}: {what} file is empty")


def jsonl_records(path: str, what: str):
    """Yield (line number, object) for every non-blank line; bytes must be UTF-8, lines JSON objects."""
    check_file(path, what)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise UserInputError(f"{path}: line {number}: undecodable bytes (not UTF-8) at byte {error.start}") \
                    from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserInputError(f"{path}: line {number}: invalid JSON ({error.msg} at column {error.colno})") \
                    from None
            if not isinstance(record, dict):
                raise UserInputError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


def string_field(record: dict, name: str, where: str, required: bool = True, allow_empty: bool = False):
    if name not in record or record[name] is None:
        if required:
            raise UserInputError(f"{where}: missing field '{name}'")
        return None
    value = record[name]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name in ("id", "answer"):
        value = str(value)
    if not isinstance(value, str):
        raise UserInputError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise UserInputError(f"{where}: field '{name}' is empty")
    return value


def check_unique(ids: list[str], lines: list[int], path: str, unit: str = "line") -> None:
    first_seen: dict[str, int] = {}
    for value, number in zip(ids, lines):
        if value in first_seen:
            raise UserInputError(f"{path}: {unit} {number}: field 'id': duplicate id {value!r} "
                                 f"(first on {unit} {first_seen[value]})")
        first_seen[value] = number


def read_corpus(path: str) -> Corpus:
    if path.endswith(".parquet"):
        return read_corpus_parquet(path)
    if not path.endswith(".jsonl"):
        raise UserInputError(f"{path}: corpus must be a .jsonl or .parquet file")
    ids, texts, sources, lines = [], [], [], []
    for number, record in jsonl_records(path, "corpus"):
        where = f"{path}: line {number}"
        ids.append(string_field(record, "id", where))
        texts.append(string_field(record, "text", where))
        sources.append(string_field(record, "source", where, required=False) or UNKNOWN_SOURCE)
        lines.append(number)
    if not ids:
        raise UserInputError(f"{path}: corpus has no documents")
    check_unique(ids, lines, path)
    return Corpus(path, ids, texts, sources, lines)


def read_corpus_parquet(path: str) -> Corpus:
    check_file(path, "corpus")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a broken file
        raise UserInputError(f"{path}: not a readable parquet file ({str(error).splitlines()[0]})") from None
    for column in ("id", "text"):
        if column not in frame.columns:
            raise UserInputError(f"{path}: missing column '{column}'")
    if frame.empty:
        raise UserInputError(f"{path}: corpus has no documents")
    ids, texts, sources, lines = [], [], [], []
    has_source = "source" in frame.columns
    for row, (doc_id, text, source) in enumerate(zip(frame["id"], frame["text"],
                                                     frame["source"] if has_source else [None] * len(frame)),
                                                 start=1):
        record = {"id": doc_id, "text": text, "source": source}
        where = f"{path}: row {row}"
        ids.append(string_field(record, "id", where))
        texts.append(string_field(record, "text", where))
        sources.append(string_field(record, "source", where, required=False) or UNKNOWN_SOURCE)
        lines.append(row)
    check_unique(ids, lines, path, unit="row")
    return Corpus(path, ids, texts, sources, lines)


def read_queries(path: str) -> Queries:
    if not path.endswith(".jsonl"):
        raise UserInputError(f"{path}: queries must be a .jsonl file")
    records, lines = [], []
    for number, record in jsonl_records(path, "queries"):
        where = f"{path}: line {number}"
        for name in QUERY_FIELDS:
            record[name] = string_field(record, name, where, allow_empty=(name == "prompt"))
        if record.get("answer") is not None:
            record["answer"] = string_field(record, "answer", where, allow_empty=True)
        steps = record.get("steps")
        if steps is not None:
            if not isinstance(steps, list):
                raise UserInputError(f"{where}: field 'steps' must be a list, got {type(steps).__name__}")
            record["steps"] = [str(step) for step in steps]
        records.append(record)
        lines.append(number)
    if not records:
        raise UserInputError(f"{path}: no queries")
    check_unique([r["id"] for r in records], lines, path)
    return Queries(path, records, lines)
