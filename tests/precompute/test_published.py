"""`precompute import-published` / `export-published`: the published data of Ruis et al. as a run directory.

A synthetic file in the same format always; the real files from ../shared/ruis/ when they are there."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from precompute.__main__ import main
from precompute.published.importer import import_published
from precompute.published.format import normalised_prompt
from tests.published_files import REAL_FILES, ROOT, make_published, real_files_present, write_published


def cli(capsys, *args) -> tuple[int, str]:
    """`python -m precompute --quiet ARGS` in this process: (exit code, stderr)."""
    capsys.readouterr()
    code = main(["--quiet", *args])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published")
    path = write_published(folder / "file_7B.json", "7B")
    run = import_published(str(path), str(folder / "run"), progress=False)
    return path, folder / "run", run


def test_import_writes_the_files_values(synthetic):
    path, out, _ = synthetic
    content, truth = make_published("7B")
    scores = np.load(out / "scores.npy")
    assert scores.dtype == np.float32 and scores.shape == (100, 8)
    np.testing.assert_allclose(scores, np.asarray(content["influences_dot"]), rtol=1e-6)
    np.testing.assert_allclose(np.load(out / "normalized_scores.npy"), np.asarray(content["influences_cos"]), rtol=1e-6)
    np.testing.assert_array_equal(np.load(out / "layer_scores.npy")[:, 0, :], scores)
    np.testing.assert_allclose(np.load(out / "doc_grad_norms.npy"), truth["norms"], rtol=1e-6)
    np.testing.assert_array_equal(np.load(out / "ranks.npy"), np.asarray(content["ranks"]))
    np.testing.assert_array_equal(np.load(out / "ranks_normalized.npy"), np.asarray(content["ranks_normed"]))
    documents = pd.read_parquet(out / "documents.parquet")
    assert documents["id"].tolist() == [str(v) for v in content["training_ids"]]
    assert documents["source"].tolist() == content["training_sources"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"] is None
    assert manifest["imported"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["imported"]["corpus_size_label"] == "~5M"
    assert not [name for name in os.listdir(out.parent) if name.startswith(".run.")]   # no staging left


def test_queries_carry_tasks_and_computed_answers(synthetic):
    _, out, _ = synthetic
    _, truth = make_published("7B")
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    tasks = [q["task"] for q in queries]
    assert tasks == ["factual"] * 40 + ["arithmetic"] * 20 + ["slope"] * 20 + ["factual_control"] * 10 + \
        ["reasoning_control"] * 10
    for query, numbers in zip(queries[40:60], truth["numbers"][40:60]):
        total = numbers["a"] + numbers["b"]
        product = str(total * numbers["c"])
        assert query["steps"] == [str(total), product] and query["answer"] == product
    for query, numbers in zip(queries[60:80], truth["numbers"][60:80]):
        assert query["steps"] == [str(numbers["dy"]), str(numbers["dx"]), str(numbers["slope"])]
    assert "answer" not in queries[0] and queries[0]["published_row"] == 0
    assert len({q["id"] for q in queries}) == 100


def test_analysis_runs_on_the_sample(synthetic):
    _, out, _ = synthetic
    scores = np.load(out / "scores.npy").astype(np.float64)
    correlations = pd.read_parquet(out / "analysis" / "correlations.parquet")
    ids = [json.loads(line)["id"] for line in (out / "queries.jsonl").read_text().splitlines()]
    row = correlations[(correlations["query_a"] == ids[3]) & (correlations["query_b"] == ids[70])]
    assert row["pearson"].iloc[0] == pytest.approx(np.corrcoef(scores[3], scores[70])[0, 1], abs=1e-5)
    assert (out / "analysis" / "findings.json").exists()


def test_an_import_can_be_analysed_again(synthetic, tmp_path, capsys):
    """`analyze` on an imported run (no per-token scores, by design) ends complete, not stuck at 'analyzing'."""
    _, out, _ = synthetic
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    code, err = cli(capsys, "analyze", "--run", str(copy))
    assert code == 0, err
    assert json.loads((copy / "manifest.json").read_text())["status"] == "complete"


def test_linear_equation_block_is_named_by_its_prompts_and_ids_follow_prompts(tmp_path):
    path = write_published(tmp_path / "file_35B.json", "35B", seed=1)
    out = tmp_path / "run35"
    result = subprocess.run([sys.executable, "-m", "precompute", "--quiet", "import-published", str(path), "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "published run written" in result.stdout, result.stderr
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    _, truth = make_published("35B", seed=1)
    assert {q["task"] for q in queries[40:60]} == {"linear_equation"}
    assert [q["answer"] for q in queries[40:60]] == [str(n["b"]) for n in truth["numbers"][40:60]]
    content_7b, _ = make_published("7B")
    same = {normalised_prompt(p) for p in content_7b["prompts"]} & {normalised_prompt(q["prompt"]) for q in queries}
    from precompute.published.format import query_ids, task_labels
    ids_7b = set(query_ids(task_labels(content_7b["prompts"])[0], content_7b["prompts"]))
    assert len(same) == 60 and len(ids_7b & {q["id"] for q in queries}) == 60


def test_repeated_document_ids_get_a_suffix():
    from precompute.published.format import document_ids
    assert document_ids([5, 7, 5, 9, 5]) == ["5", "7", "5-2", "9", "5-3"]


BAD = {
    "a list": lambda c: [c],
    "missing field": lambda c: {k: v for k, v in c.items() if k != "ranks"},
    "short row": lambda c: {**c, "influences_dot": c["influences_dot"][:3] + [c["influences_dot"][3][:-1]]
                            + c["influences_dot"][4:]},
    "short sources": lambda c: {**c, "training_sources": c["training_sources"][:-1]},
    "nan": lambda c: {**c, "influences_cos": [[float("nan")] * 8] + c["influences_cos"][1:]},
    "fractional rank": lambda c: {**c, "ranks": [[0.5] * 8] + c["ranks"][1:]},
}
MESSAGES = {"a list": "expected a JSON object", "missing field": "missing field 'ranks'",
            "short row": "'influences_dot' row 3 has 7 values, expected 8", "short sources": "'training_sources' has 7",
            "nan": "'influences_cos' row 0 column 0: nan is not a finite number", "fractional rank": "not a rank"}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    content, _ = make_published("7B")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD[case](content)))
    code, stderr = cli(capsys, "import-published", str(path), "--out", str(tmp_path / "runs" / "bad"))
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and MESSAGES[case] in lines[0], lines
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


def test_existing_runs_and_folders_are_protected(synthetic, tmp_path, capsys):
    path, imported, _ = synthetic
    out = tmp_path / "run"
    shutil.copytree(imported, out)
    code, stderr = cli(capsys, "import-published", str(path), "--out", str(out))
    assert code == 2 and "--overwrite" in stderr
    assert cli(capsys, "import-published", str(path), "--out", str(out), "--overwrite")[0] == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, stderr = cli(capsys, "import-published", str(path), "--out", str(tmp_path / "other"))
    assert code == 2 and "not a run directory" in stderr and (tmp_path / "other" / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["other", "run"]


def test_export_writes_inputs_that_precompute_reads(synthetic, tmp_path, capsys):
    from precompute.inputs.readers import read_corpus
    path, _, _ = synthetic
    code, stderr = cli(capsys, "export-published", str(path), "--out", str(tmp_path / "inputs"), "--per-task", "2",
                       "--long-chars", "100")
    assert code == 0, stderr
    corpus = read_corpus(str(tmp_path / "inputs" / "corpus.jsonl"))
    content, _ = make_published("7B")
    assert corpus.texts == content["training_sequences"]
    prompts = [json.loads(line) for line in (tmp_path / "inputs" / "prompts.jsonl").read_text().splitlines()]
    assert [p["task"] for p in prompts] == ["factual"] * 2 + ["arithmetic"] * 2 + ["slope"] * 2 + \
        ["factual_control"] * 2 + ["reasoning_control"] * 2
    assert all("completion" not in p and p["paper_completion"] for p in prompts)
    long = read_corpus(str(tmp_path / "inputs" / "corpus_long.jsonl"))
    assert all(len(text) >= 100 for text in long.texts) and "\n\n".join(long.texts) in "\n\n".join(corpus.texts)


# ---------------------------------------------------------------- the real files, when present

real = pytest.mark.skipif(not real_files_present(), reason="the published files are not in ../shared/ruis")


@pytest.fixture(scope="module")
def real_runs(real_imports):
    """The session's imports of the published files (tests/conftest.py)."""
    return real_imports


@real
def test_real_files_import_with_the_documented_layout(real_runs):
    tasks = {}
    for size, out in real_runs.items():
        queries = [json.loads(line) for line in open(os.path.join(out, "queries.jsonl"))]
        tasks[size] = [q["task"] for q in queries]
        content = json.loads(REAL_FILES[size].read_text())
        np.testing.assert_allclose(np.load(os.path.join(out, "scores.npy")), content["influences_dot"], rtol=1e-6)
        norms = np.load(os.path.join(out, "doc_grad_norms.npy"))
        np.testing.assert_allclose(np.asarray(content["influences_dot"]) / norms,
                                   np.asarray(content["influences_cos"]), rtol=1e-6)
    middle = {"7B": "arithmetic", "35B": "linear_equation"}
    for size, labels in tasks.items():
        assert labels == ["factual"] * 40 + [middle[size]] * 20 + ["slope"] * 20 + ["factual_control"] * 10 + \
            ["reasoning_control"] * 10
    assert int(np.load(os.path.join(real_runs["7B"], "ranks.npy"))[0, 0]) == 414427


@real
def test_real_files_share_37_questions_by_id(real_runs):
    ids = {size: {json.loads(line)["id"] for line in open(os.path.join(out, "queries.jsonl"))}
           for size, out in real_runs.items()}
    prompts = {size: {normalised_prompt(p) for p in json.loads(REAL_FILES[size].read_text())["prompts"]}
               for size in REAL_FILES}
    assert len(ids["7B"] & ids["35B"]) == len(prompts["7B"] & prompts["35B"]) == 37
