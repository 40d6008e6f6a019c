"""A corpus as shards (issue 25, part 3): a directory or glob of .jsonl, .jsonl.gz, .jsonl.zst and .parquet files
reads to the same documents and gives the same run as one file; errors name the shard and its line."""
import gzip
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from precompute.inputs.corpus_shards import corpus_sha256
from precompute.rundir.errors import UserInputError
from precompute.inputs.readers import read_corpus
from tests.precompute.conftest import SMALL_FLAGS, corpus_rows, run_cli, write_jsonl

HAS_ZSTD = importlib.util.find_spec("zstandard") is not None


def jsonl_text(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_shards(folder, rows, bad_line_in_gz: int | None = None) -> list[str]:
    """rows split over part-0.jsonl, part-1.jsonl.gz (optionally with an invalid line), part-2.parquet and, with
    zstandard installed, part-3.jsonl.zst; sorted names keep the document order."""
    folder.mkdir(parents=True, exist_ok=True)
    quarter = len(rows) // 4
    parts = [rows[:quarter], rows[quarter:2 * quarter], rows[2 * quarter:3 * quarter], rows[3 * quarter:]]
    if not HAS_ZSTD:
        parts = [parts[0], parts[1], parts[2] + parts[3]]
    (folder / "part-0.jsonl").write_text(jsonl_text(parts[0]))
    lines = jsonl_text(parts[1]).splitlines(keepends=True)
    if bad_line_in_gz is not None:
        lines[bad_line_in_gz - 1] = '{"id": "broken", "text": \n'
    with gzip.open(folder / "part-1.jsonl.gz", "wt") as handle:
        handle.write("".join(lines))
    pd.DataFrame(parts[2]).to_parquet(folder / "part-2.parquet", index=False)
    if HAS_ZSTD:
        import zstandard
        (folder / "part-3.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl_text(parts[3]).encode()))
    return sorted(str(path) for path in folder.iterdir())


def test_mixed_shards_read_like_one_file(tmp_path):
    rows = corpus_rows(24)
    single = read_corpus(write_jsonl(tmp_path / "one.jsonl", rows))
    shards = write_shards(tmp_path / "shards", rows)
    for path in (str(tmp_path / "shards"), str(tmp_path / "shards" / "part-*")):
        corpus = read_corpus(path)
        assert corpus.ids == single.ids and corpus.texts == single.texts and corpus.sources == single.sources
        assert corpus.shards == shards
    assert corpus.where(7) == f"{shards[1]}: line 2"          # the 8th document is the gz shard's 2nd line
    assert corpus.where(12) == f"{shards[2]}: row 1"
    assert corpus_sha256(str(tmp_path / "shards")) != corpus_sha256(shards[0])


def test_bad_line_in_a_compressed_shard_is_named_like_in_one_file(tmp_path):
    rows = corpus_rows(24)
    single = tmp_path / "one.jsonl"
    lines = jsonl_text(rows).splitlines(keepends=True)
    lines[7] = '{"id": "broken", "text": \n'
    single.write_text("".join(lines))
    with pytest.raises(UserInputError) as in_one:
        read_corpus(str(single))
    shards = write_shards(tmp_path / "shards", rows, bad_line_in_gz=2)
    with pytest.raises(UserInputError) as in_shard:
        read_corpus(str(tmp_path / "shards"))
    assert str(in_one.value) == f"{single}: line 8: invalid JSON (Expecting value at column 1)"
    assert str(in_shard.value) == f"{shards[1]}: line 2: invalid JSON (Expecting value at column 1)"


def test_duplicate_id_across_shards_names_both(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"id": "x", "text": "one"}, {"id": "y", "text": "two"}])
    pd.DataFrame([{"id": "z", "text": "three"}, {"id": "y", "text": "four"}]).to_parquet(folder / "b.parquet")
    with pytest.raises(UserInputError) as error:
        read_corpus(str(folder))
    assert str(error.value) == (f"{folder / 'b.parquet'}: row 2: field 'id': duplicate id 'y' "
                                f"(first on {folder / 'a.jsonl'}: line 2)")


def test_zst_shard_needs_zstandard_or_reads(tmp_path):
    path = tmp_path / "c.jsonl.zst"
    if HAS_ZSTD:
        import zstandard
        path.write_bytes(zstandard.ZstdCompressor().compress(b'{"id": "a", "text": "x"}\n'))
        assert read_corpus(str(path)).texts == ["x"]
    else:
        path.write_bytes(b"\x28\xb5\x2f\xfd not really zstd")
        with pytest.raises(UserInputError, match=r"c\.jsonl\.zst: reading \.zst shards needs the Python package "
                                                  r"zstandard"):
            read_corpus(str(path))


@pytest.mark.slow
def test_run_over_shards_equals_the_run_over_one_file_also_after_a_kill(world, tmp_path):
    rows = corpus_rows(24)
    one = write_jsonl(tmp_path / "one.jsonl", rows)
    write_shards(tmp_path / "shards", rows)
    common = ["--model", world["model"], "--queries", world["queries"], *SMALL_FLAGS]
    run_cli("run", "--corpus", one, "--out", tmp_path / "run-one", *common)
    shard_run = ["run", "--corpus", tmp_path / "shards", "--out", tmp_path / "run-shards", *common]
    killed = run_cli(*shard_run, env={"PRECOMPUTE_TEST_EXIT_AFTER_CHUNKS": "1"}, check=False)
    assert killed.returncode == 75, killed.stderr                # one chunk of the shards written, then killed
    run_cli(*shard_run)                                           # resumes from the written chunk
    scores = [np.load(tmp_path / run / "scores.npy") for run in ("run-one", "run-shards")]
    np.testing.assert_array_equal(scores[0], scores[1])
    documents = [pd.read_parquet(tmp_path / run / "documents.parquet") for run in ("run-one", "run-shards")]
    pd.testing.assert_frame_equal(documents[0], documents[1])


@pytest.mark.parametrize("case", ["empty directory", "glob matching nothing", "bad line in a gz shard"])
def test_shard_errors_are_one_line_exit_2(world, tmp_path, case):
    if case == "empty directory":
        (tmp_path / "empty").mkdir()
        corpus, expected = tmp_path / "empty", "corpus directory has no shards"
    elif case == "glob matching nothing":
        corpus, expected = tmp_path / "nothing-*.jsonl", "corpus pattern matches no shards"
    else:
        shards = write_shards(tmp_path / "shards", corpus_rows(24), bad_line_in_gz=3)
        corpus, expected = tmp_path / "shards", f"{shards[1]}: line 3: invalid JSON"
    result = run_cli("run", "--model", world["model"], "--corpus", corpus, "--queries", world["queries"],
                     "--out", tmp_path / "out", *SMALL_FLAGS, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    assert expected in result.stderr
