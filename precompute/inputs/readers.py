"""Read and validate the corpus and the queries; every problem is one UserInputError naming file, line, field.

Corpus: .jsonl (one JSON object per line; .jsonl.gz, .jsonl.zst) or .parquet, one file or a directory or glob of
shards (precompute.inputs.corpus_shards), with `id`, `text` and optional `source`; every other
field or column is kept as document metadata (documents.parquet; the analysis breaks results down by it).
Queries: .jsonl with `id`, `task`, `prompt`, `completion` and optional `answer`, `steps` (a list); any other
field is kept and written back to the run's queries.jsonl.
Accepted as real files come: UTF-8 with or without a byte-order mark, LF or CRLF line ends, blank lines.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


from precompute.inputs.corpus_shards import parquet_rows, read_lines, shard_paths
from precompute.rundir.errors import UserInputError

UNKNOWN_SOURCE = "unknown"
QUERY_FIELDS = ("id", "task", "prompt", "completion")
CORPUS_FIELDS = ("id", "text", "source")
RESERVED_DOCUMENT_COLUMNS = ("n_tokens", "truncated")   # written by the pipeline into documents.parquet
BOM = "\ufeff"


@dataclass
class Corpus:
    path: str
    ids: list[str]
    texts: list[str]
    sources: list[str]
    lines: list[int]          # 1-based line (jsonl) or row (parquet) of each document, for messages
    metadata: dict[str, list] = field(default_factory=dict)   # extra fields, one value per document (None if absent)
    shards: list[str] = field(default_factory=list)           # the files read, in order (one for a single file)
    shard_index: list[int] = field(default_factory=list)      # position in `shards` of each document's file

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, index: int) -> str:
        shard = self.shards[self.shard_index[index]] if self.shards else self.path
        unit = "row" if shard.endswith(".parquet") else "line"
        return f"{shard}: {unit} {self.lines[index]}"


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
    """Yield (line number, object) for every non-blank line (of the decompressed bytes of a .gz or .zst file);
    bytes must be UTF-8, lines JSON objects."""
    check_file(path, what)
    for number, raw in read_lines(path):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UserInputError(f"{path}: line {number}: undecodable bytes (not UTF-8) at byte {error.start}") \
                from None
        if number == 1:
            line = line.removeprefix(BOM)
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


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def metadata_value(value, where: str):
    """A document metadata value as stored: scalars as they are, lists/objects as compact JSON text."""
    if hasattr(value, "tolist"):          # numpy scalars and arrays from Parquet
        value = value.tolist()
    if value is None or isinstance(value, (str, bool, int, float)):
        if isinstance(value, float) and value != value:
            return None
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    raise UserInputError(f"{where}: unsupported value of type {type(value).__name__}")


def metadata_columns(extras: list[dict], path: str) -> dict[str, list]:
    """Per extra field, one value per document (None where a document lacks it); one type per column."""
    names = list(dict.fromkeys(name for record in extras for name in record))
    columns = {}
    for name in names:
        if name in RESERVED_DOCUMENT_COLUMNS:
            raise UserInputError(f"{path}: field '{name}' is reserved (the run computes it); rename it")
        values = [record.get(name) for record in extras]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            values = [None if v is None else str(v) for v in values]     # mixed types: kept as text
        columns[name] = values
    return columns


def check_unique(ids: list[str], lines: list[int], path: str, unit: str = "line") -> None:
    first_seen: dict[str, int] = {}
    for value, number in zip(ids, lines):
        if value in first_seen:
            raise UserInputError(f"{path}: {unit} {number}: field 'id': duplicate id {value!r} "
                                 f"(first on {unit} {first_seen[value]})")
        first_seen[value] = number


def corpus_records(shard: str):
    """Yield (unit, number, record) of one shard: jsonl lines as parsed objects, parquet rows as dicts."""
    if shard.endswith(".parquet"):
        check_file(shard, "corpus")
        for row, record in parquet_rows(shard, ("id", "text")):
            yield "row", row, {key: None if is_missing(value) else value for key, value in record.items()}
    else:
        for number, record in jsonl_records(shard, "corpus"):
            yield "line", number, record


def read_corpus(path: str) -> Corpus:
    """The documents of one file or of every shard (precompute.inputs.corpus_shards), streamed shard by shard."""
    shards = shard_paths(path)
    ids, texts, sources, lines, shard_index, extras = [], [], [], [], [], []
    for number_of_shard, shard in enumerate(shards):
        for unit, number, record in corpus_records(shard):
            where = f"{shard}: {unit} {number}"
            ids.append(string_field(record, "id", where))
            texts.append(string_field(record, "text", where))
            sources.append(string_field(record, "source", where, required=False) or UNKNOWN_SOURCE)
            noun = "field" if unit == "line" else "column"
            extras.append({key: metadata_value(value, f"{where}: {noun} '{key}'")
                           for key, value in record.items() if key not in CORPUS_FIELDS})
            lines.append(number)
            shard_index.append(number_of_shard)
    if not ids:
        raise UserInputError(f"{path}: corpus has no documents")
    corpus = Corpus(path, ids, texts, sources, lines, metadata_columns(extras, path), shards, shard_index)
    check_unique_documents(corpus)
    return corpus


def check_unique_documents(corpus: Corpus) -> None:
    first_seen: dict[str, int] = {}
    for index, value in enumerate(corpus.ids):
        first = first_seen.setdefault(value, index)
        if first != index:
            same = corpus.shard_index[first] == corpus.shard_index[index]
            place = corpus.where(first).rsplit(": ", 1)[1] if same else corpus.where(first)
            raise UserInputError(f"{corpus.where(index)}: field 'id': duplicate id {value!r} (first on {place})")


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
