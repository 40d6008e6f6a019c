"""The synthetic run follows the run-directory contract; rundir's atomic writes and chunk fingerprints."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from precompute import rundir
from precompute.__main__ import main
from precompute.worlds.synth import write_synthetic_run
from tests.precompute.test_pipeline import ANALYSIS_TABLES


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "run"
    return write_synthetic_run(str(out), n_queries=12, n_docs=3000, n_layers=3, seed=1, progress=False)


def test_synthetic_run_follows_the_contract(synth_run):
    run = synth_run
    manifest = run.manifest()
    assert manifest["status"] == "complete" and manifest["synthetic"] is True
    assert manifest["counts"] == {"queries": 12, "documents": 3000, "layers": 3,
                                  "document_tokens": manifest["counts"]["document_tokens"], "truncated_documents": 0}
    assert run.missing_files() == []
    scores, layers = np.load(run.file("scores.npy")), np.load(run.file("layer_scores.npy"))
    norms, normalized = np.load(run.file("doc_grad_norms.npy")), np.load(run.file("normalized_scores.npy"))
    assert scores.shape == (12, 3000) and layers.shape == (12, 3, 3000)
    np.testing.assert_allclose(layers.sum(axis=1), scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalized, scores / norms, rtol=1e-6)
    documents = pd.read_parquet(run.file("documents.parquet"))
    assert list(documents.columns) == ["id", "source", "text", "n_tokens", "truncated"]
    tokens = pd.read_parquet(run.file("token_scores.parquet"))
    column = {doc_id: i for i, doc_id in enumerate(documents.id)}
    row = {q["id"]: i for i, q in enumerate(rundir.read_jsonl(run.file("queries.jsonl")))}
    for (query_id, doc_id), group in tokens.groupby(["query_id", "doc_id"]):
        assert group.score.sum() == pytest.approx(scores[row[query_id], column[doc_id]], rel=1e-4, abs=1e-6)
        text = documents.text[column[doc_id]]
        assert "".join(text[s:e] for s, e in zip(group.start, group.end)) == text
    for name in ANALYSIS_TABLES:
        assert len(pd.read_parquet(run.file("analysis", f"{name}.parquet"))) > 0, name
    findings = json.load(open(run.file("analysis", "findings.json")))
    pooled = {record["name"]: record for record in findings["findings"]}["correlation.reasoning_vs_factual"]
    assert pooled["effect"] > 0 and "reasoning_correlates_more" not in findings   # legacy keys gone


def test_synthetic_factors_load_with_the_engine(synth_run):
    from engine.factors import Factors
    factors = Factors.load(synth_run.file("factors"))
    layers = json.load(open(synth_run.file("layers.json")))
    assert factors.strategy == "ekfac" and factors.modules == layers
    assert set(factors.tensors) == set(layers)
    assert {tuple(t.shape) for t in factors.tensors[layers[0]].values()} == {(8, 8)}


def test_reader_opens_the_synthetic_run(synth_run):
    run = rundir.read_run(synth_run.path)
    assert (run.n_queries, run.n_documents, len(run.layers)) == (12, 3000, 3)
    assert not run.has_model
    row = run.query_row(run.queries["id"].iloc[4])
    np.testing.assert_array_equal(run.score_row(row), np.load(synth_run.file("scores.npy"))[4])
    tokens = run.token_scores(run.queries["id"].iloc[4])
    assert set(tokens["query_id"]) == {run.queries["id"].iloc[4]} and set(tokens["side"]) == {"top", "bottom"}
    with pytest.raises(rundir.RunError, match="no query `nope`"):
        run.query_row("nope")


def test_reader_refuses_an_incomplete_run_with_no_writer(synth_run, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(synth_run.path, copy)
    rundir.RunDir(str(copy)).set_status("scoring")
    with pytest.raises(rundir.RunError, match="not complete .* no process is writing it"):
        rundir.read_run(copy)


def test_synth_refuses_to_overwrite_a_complete_run(synth_run, capsys):
    assert main(["--quiet", "synth", "--out", synth_run.path, "--docs", "100", "--queries", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_analyze_command_rewrites_tables(synth_run):
    os.remove(synth_run.file("analysis", "power_law.parquet"))
    assert main(["--quiet", "analyze", "--out", synth_run.path]) == 0
    assert os.path.exists(synth_run.file("analysis", "power_law.parquet"))
    assert synth_run.is_complete()


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with rundir.atomic_path(str(target)) as temporary:
            open(temporary, "w").write("half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    rundir.write_json(str(target), {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["x.json"]


def test_chunk_store_discards_chunks_of_other_settings(tmp_path):
    run = rundir.RunDir(str(tmp_path))
    store = rundir.ChunkStore(run)
    assert store.open({"damping": "auto"}) == 0
    store.write(0, 4, scores=np.ones((2, 4), np.float32))
    assert rundir.ChunkStore(run).open({"damping": "auto"}) == 1
    assert store.read(0, 4)["scores"].sum() == 8
    assert rundir.ChunkStore(run).open({"damping": 0.5}) == 0
