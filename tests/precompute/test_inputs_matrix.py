"""Corpus and query files as real files look: accepted variants are read to the same documents, broken ones are
refused with one file:line:field message (issue 15)."""
import json

import pandas as pd
import pytest

from precompute.rundir.errors import UserInputError
from precompute.inputs.readers import read_corpus, read_queries

ROWS = [{"id": "a", "text": "first document", "source": "web", "lang": "en", "year": 2020},
        {"id": "b", "text": "zweites Dokument", "source": "wiki", "lang": "de", "year": 2021},
        {"id": "c", "text": "third, with no source", "lang": "en"}]


def jsonl_bytes(rows, newline="\n", bom=False, trailing_blank=0, blank_between=False) -> bytes:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    if blank_between:
        lines = [lines[0], "", "   "] + lines[1:]
    text = newline.join(lines) + newline + newline * trailing_blank
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


ACCEPTED = {
    "plain LF": dict(),
    "UTF-8 BOM": dict(bom=True),
    "CRLF": dict(newline="\r\n"),
    "BOM + CRLF + trailing blank lines": dict(bom=True, newline="\r\n", trailing_blank=3),
    "blank lines between": dict(blank_between=True),
}


@pytest.mark.parametrize("variant", list(ACCEPTED))
def test_accepted_jsonl_variants_read_the_same(tmp_path, variant):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(jsonl_bytes(ROWS, **ACCEPTED[variant]))
    corpus = read_corpus(str(path))
    assert corpus.ids == ["a", "b", "c"]
    assert corpus.texts == ["first document", "zweites Dokument", "third, with no source"]
    assert corpus.sources == ["web", "wiki", "unknown"]
    assert corpus.metadata == {"lang": ["en", "de", "en"], "year": [2020, 2021, None]}


def test_parquet_with_the_same_schema_reads_the_same(tmp_path):
    path = tmp_path / "corpus.parquet"
    pd.DataFrame(ROWS).to_parquet(path, index=False)
    corpus = read_corpus(str(path))
    assert corpus.ids == ["a", "b", "c"] and corpus.sources == ["web", "wiki", "unknown"]
    assert corpus.metadata["lang"] == ["en", "de", "en"]
    assert corpus.metadata["year"][:2] == [2020.0, 2021.0] and corpus.metadata["year"][2] is None


def test_queries_with_bom_and_crlf(tmp_path):
    path = tmp_path / "queries.jsonl"
    rows = [{"id": "q1", "task": "factual", "prompt": "P", "completion": " C", "note": "kept"}]
    path.write_bytes(jsonl_bytes(rows, newline="\r\n", bom=True, trailing_blank=2))
    queries = read_queries(str(path))
    assert queries.records == [{"id": "q1", "task": "factual", "prompt": "P", "completion": " C", "note": "kept"}]


REFUSED = {
    "invalid JSON on line 2": (b'{"id": "a", "text": "x"}\n{"id": "b", "text": \n', "line 2: invalid JSON"),
    "BOM not at the start": (b'{"id": "a", "text": "x"}\n\xef\xbb\xbf{"id": "b", "text": "y"}\n', "line 2: invalid JSON"),
    "not UTF-8": (b'{"id": "a", "text": "caf\xe9"}\n', "line 1: undecodable bytes"),
    "missing text": (b'{"id": "a"}\n', "line 1: missing field 'text'"),
    "empty text": (b'{"id": "a", "text": "  "}\n', "line 1: field 'text' is empty"),
    "duplicate id": (b'{"id": "a", "text": "x"}\r\n{"id": "a", "text": "y"}\r\n', "line 2: field 'id': duplicate"),
    "array, not object": (b'["a", "x"]\n', "line 1: expected a JSON object"),
    "reserved column": (b'{"id": "a", "text": "x", "n_tokens": 3}\n', "field 'n_tokens' is reserved"),
    "only blank lines": (b'\xef\xbb\xbf\r\n\r\n', "no documents"),
}


@pytest.mark.parametrize("variant", list(REFUSED))
def test_refused_variants_name_file_line_and_field(tmp_path, variant):
    content, fragment = REFUSED[variant]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserInputError) as error:
        read_corpus(str(path))
    message = str(error.value)
    assert message.startswith(str(path)) and fragment in message and "\n" not in message, message


def test_parquet_missing_column_is_refused(tmp_path):
    path = tmp_path / "corpus.parquet"
    pd.DataFrame({"id": ["a"], "body": ["x"]}).to_parquet(path, index=False)
    with pytest.raises(UserInputError, match="missing column 'text'"):
        read_corpus(str(path))
