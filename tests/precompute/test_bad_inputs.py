"""Every bad input exits with code 2 and one `error:` line naming the file, line and field; no traceback."""
import json

import pytest

from tests.precompute.conftest import corpus_rows, query_rows, run_args, run_cli, write_jsonl


def expect_error(result, *fragments):
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def corpus_file(tmp_path, mutate, name="corpus.jsonl"):
    rows = corpus_rows(8)
    mutate(rows)
    return write_jsonl(tmp_path / name, rows)


def run_with(world, tmp_path, corpus=None, queries=None, *extra):
    paths = dict(world, corpus=corpus or world["corpus"], queries=queries or world["queries"])
    return run_cli(*run_args(paths, tmp_path / "run", *extra), check=False)


def test_missing_corpus(world, tmp_path):
    expect_error(run_with(world, tmp_path, corpus=str(tmp_path / "nope.jsonl")), "nope.jsonl", "not found")


def test_empty_corpus(world, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    expect_error(run_with(world, tmp_path, corpus=str(tmp_path / "empty.jsonl")), "empty.jsonl", "empty")


def test_invalid_json_line(world, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(corpus_rows(1)[0]) + "\n{not json\n")
    expect_error(run_with(world, tmp_path, corpus=str(path)), "bad.jsonl", "line 2", "invalid JSON")


def test_missing_field(world, tmp_path):
    path = corpus_file(tmp_path, lambda rows: rows[2].pop("text"))
    expect_error(run_with(world, tmp_path, corpus=path), "corpus.jsonl", "line 3", "'text'")


def test_duplicate_ids(world, tmp_path):
    path = corpus_file(tmp_path, lambda rows: rows[4].update(id=rows[1]["id"]))
    expect_error(run_with(world, tmp_path, corpus=path), "line 5", "'id'", "duplicate", "line 2")


def test_empty_text(world, tmp_path):
    path = corpus_file(tmp_path, lambda rows: rows[3].update(text="   "))
    expect_error(run_with(world, tmp_path, corpus=path), "line 4", "'text'", "empty")


def test_undecodable_bytes(world, tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(corpus_rows(1)[0]).encode() + b"\n" + '{"id": "x", "text": "caf\xe9"}\n'.encode("latin-1"))
    expect_error(run_with(world, tmp_path, corpus=str(path)), "latin1.jsonl", "line 2", "UTF-8")


def test_parquet_missing_column(world, tmp_path):
    import pandas as pd
    path = tmp_path / "corpus.parquet"
    pd.DataFrame({"id": ["a"], "body": ["text"]}).to_parquet(path)
    expect_error(run_with(world, tmp_path, corpus=str(path)), "corpus.parquet", "'text'")


def test_empty_completion(world, tmp_path):
    rows = query_rows()
    rows[1]["completion"] = ""
    path = write_jsonl(tmp_path / "queries.jsonl", rows)
    expect_error(run_with(world, tmp_path, queries=path), "queries.jsonl", "line 2", "'completion'")


def test_missing_query_field(world, tmp_path):
    rows = query_rows()
    rows[0].pop("task")
    path = write_jsonl(tmp_path / "queries.jsonl", rows)
    expect_error(run_with(world, tmp_path, queries=path), "queries.jsonl", "line 1", "'task'")


def test_completion_longer_than_max_length(world, tmp_path):
    rows = query_rows()
    rows[2]["completion"] = " seven" * 40
    path = write_jsonl(tmp_path / "queries.jsonl", rows)
    expect_error(run_with(world, tmp_path, queries=path), "queries.jsonl", "line 3", "'completion'")


def test_missing_model(world, tmp_path):
    expect_error(run_with(dict(world, model=str(tmp_path / "no-model")), tmp_path), "no-model")


def test_invalid_model(world, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{\"model_type\": \"nonsense\"}")
    expect_error(run_with(dict(world, model=str(broken)), tmp_path), "broken-model")


def test_module_spec_matching_nothing_fails_the_run(world, tmp_path):
    expect_error(run_with(world, tmp_path, None, None, "--modules", "no_such_layer"), "no_such_layer")
    manifest = tmp_path / "run" / "manifest.json"   # refused up front by the memory plan: no manifest at all
    assert not manifest.exists() or json.loads(manifest.read_text())["status"] == "failed"   # never complete


def test_score_without_factors(world, tmp_path):
    result = run_cli("score", "--model", world["model"], "--corpus", world["corpus"], "--queries",
                     world["queries"], "--out", tmp_path / "empty-run", check=False)
    expect_error(result, "empty-run", "no factors")


def test_analyze_without_run(tmp_path):
    expect_error(run_cli("analyze", "--out", tmp_path / "nothing", check=False), "nothing", "no run directory")
    assert not (tmp_path / "nothing").exists()          # nothing created
    (tmp_path / "empty").mkdir()
    expect_error(run_cli("analyze", "--run", tmp_path / "empty", check=False), "empty", "manifest")
