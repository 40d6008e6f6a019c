"""`precompute validate` end to end on the tiny world: rows recomputed by an independent SGD step, --lr auto on
target, other runs and BM25 ranked on the same footing, bad input refused with nothing written, resume after a
kill equal to an uninterrupted run."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from precompute.__main__ import main
from precompute.validation.command import EXIT_AFTER_ENV
from tests.precompute.conftest import run_cli

FLAGS = ["--k", "3", "--random-draws", "4"]


@pytest.fixture(scope="module")
def runs(model_runs):
    """A complete ekfac run and a complete identity run of the tiny world (never validated in place)."""
    return model_runs


def fresh_copy(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


@pytest.fixture(scope="module")
def validated(runs, tmp_path_factory):
    out = fresh_copy(runs["ekfac"], tmp_path_factory.mktemp("validated") / "run")
    run_cli("validate", "--run", out, *FLAGS, "--strategy-runs", runs["identity"])
    return out


def table(out, name="validation"):
    return pd.read_parquet(out / "analysis" / f"{name}.parquet")


def completion_logprob(model, item) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([item.input_ids])).logits[0].double()
    labels = torch.tensor(item.labels)
    keep = labels != -100
    return float(torch.log_softmax(logits, -1)[keep, labels[keep]].sum())


def independent_delta(run_dir, query_row, doc_columns, lr) -> float:
    """One SGD step of rate lr on the summed NLL of the documents (each unpadded), on the run's tracked modules."""
    from engine.batches import tokenize_documents, tokenize_queries
    from engine.model import load_model

    manifest = json.loads((run_dir / "manifest.json").read_text())
    model, tokenizer = load_model(manifest["model"])
    layers = json.loads((run_dir / "layers.json").read_text())
    named = dict(model.named_modules())
    parameters = [named[name].weight for name in layers]
    query = [json.loads(line) for line in (run_dir / "queries.jsonl").read_text().splitlines()][query_row]
    item = tokenize_queries(tokenizer, [query["prompt"]], [query["completion"]], manifest["max_length"])[0]
    texts = pd.read_parquet(run_dir / "documents.parquet")["text"].iloc[list(doc_columns)].tolist()
    loss = 0.0
    for doc in tokenize_documents(tokenizer, texts, manifest["max_length"]):
        logits = model(input_ids=torch.tensor([doc.input_ids])).logits[0]
        loss = loss + F.cross_entropy(logits, torch.tensor(doc.labels), ignore_index=-100, reduction="sum")
    grads = torch.autograd.grad(loss, parameters)
    before = completion_logprob(model, item)
    with torch.no_grad():
        for parameter, grad in zip(parameters, grads):
            parameter -= lr * grad
    return completion_logprob(model, item) - before


def test_rows_match_an_independent_sgd_step(validated, runs):
    frame = table(validated)
    manifest = json.loads((validated / "manifest.json").read_text())
    lr = manifest["validation"]["lr"]
    assert set(frame["method"]) == {"ekfac", "identity", "bm25", "random"}
    counts = frame.groupby("method").size().to_dict()
    assert counts == {"ekfac": 10, "identity": 10, "bm25": 5, "random": 20}      # 5 queries, R = 4
    assert (frame["lr"] == lr).all() and (frame["k"] == 3).all() and (frame["steps"] == 1).all()
    assert not os.path.exists(validated / "validation_chunks")

    scores = np.load(validated / "scores.npy")
    row = 1
    query_id = json.loads((validated / "queries.jsonl").read_text().splitlines()[row])["id"]
    top = np.argsort(-scores[row], kind="stable")[:3]
    recorded = frame.query("query_id == @query_id and method == 'ekfac' and set == 'top'")["delta_logprob"].item()
    assert recorded == pytest.approx(independent_delta(validated, row, top, lr), rel=2e-3)
    random_set = manifest["validation"]["random_sets"][2]
    recorded = frame.query("query_id == @query_id and set == 'random' and draw == 2")["delta_logprob"].item()
    assert recorded == pytest.approx(independent_delta(validated, row, random_set, lr), rel=2e-3)

    identity = np.load(runs["identity"] / "scores.npy")
    bottom = np.argsort(identity[row], kind="stable")[:3]
    recorded = frame.query("query_id == @query_id and method == 'identity' and set == 'bottom'")
    assert recorded["delta_logprob"].item() == pytest.approx(independent_delta(validated, row, bottom, lr), rel=2e-3)


def test_lr_auto_puts_the_ranked_sets_in_the_first_order_regime(validated):
    frame = table(validated)
    calibration = json.loads((validated / "manifest.json").read_text())["validation"]["calibration"]
    assert calibration["mode"] == "auto" and calibration["target"] == 0.05
    assert calibration["linearity_error"] <= 0.1 and calibration["lr"] == frame["lr"].iloc[0]
    assert sorted(calibration["probe_queries"]) == sorted(frame["query_id"].unique())      # 5 queries: all probed
    halvings = len(calibration["tried"]) - 1
    probed = frame.query("method == 'ekfac'")["delta_logprob"].abs().median()
    assert probed == pytest.approx(0.05 / 2 ** halvings, rel=0.15)    # first order at that lr, within tolerance


def test_summaries_and_findings(validated):
    summary = table(validated, "validation_summary").set_index("method")
    queries = table(validated, "validation_queries")
    frame = table(validated)
    assert set(summary.index) == {"ekfac", "identity", "bm25"}
    ekfac = queries[queries["method"] == "ekfac"].set_index("query_id")
    for query_id, part in frame[frame["set"] == "random"].groupby("query_id"):
        draws = part["delta_logprob"].to_numpy()
        top = frame.query("query_id == @query_id and method == 'ekfac' and set == 'top'")["delta_logprob"].item()
        assert ekfac.loc[query_id, "top_beats_all"] == (top > draws.max())
        assert ekfac.loc[query_id, "top_z"] == pytest.approx((top - draws.mean()) / draws.std(ddof=1))
    assert summary.loc["ekfac", "frac_top_beats_all"] == pytest.approx(ekfac["top_beats_all"].mean())
    records = {r["name"]: r for r in json.loads((validated / "analysis" / "findings.json").read_text())["findings"]}
    top = records["validation.ekfac.top_beats_random"]
    assert top["parts"]["share"] == pytest.approx(ekfac["top_beats_all"].mean())
    assert top["effect"] == pytest.approx(ekfac["top_beats_all"].mean() - 1 / 5)
    assert "validation.bm25.bottom_below_random" not in records and "validation.identity.bottom_below_random" in records
    assert any(name.startswith("occurrence.") for name in records)           # the other findings are kept
    assert all("adjusted_verdict" in record for record in records.values())   # Holm over the refreshed records
    # random sets are token-matched to the run's own top-k sets (precompute.validation.sets.TOKEN_TOLERANCE)
    from precompute.validation.sets import TOKEN_TOLERANCE
    target = frame.query("method == 'ekfac' and set == 'top'")["set_tokens"].mean()
    random_tokens = frame[frame["set"] == "random"].groupby("draw")["set_tokens"].first()
    assert (abs(random_tokens - target) <= TOKEN_TOLERANCE * target + 1).all(), (random_tokens.tolist(), target)


def test_analyze_recomputes_the_validation_summaries(validated, tmp_path):
    out = fresh_copy(validated, tmp_path / "run")
    expected = table(validated, "validation_summary")
    (out / "analysis" / "validation_summary.parquet").unlink()
    run_cli("analyze", "--run", out)
    pd.testing.assert_frame_equal(table(out, "validation_summary"), expected)


def snapshot(out) -> dict:
    """Every file's modification time, but the writer lock file (the CLI holds it while any command runs)."""
    return {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.name != ".lock"}


def expect_refused(out, capsys, *args, fragment):
    """In process (no interpreter start per case): exit 2, one `error:` line, nothing written."""
    before = (out / "manifest.json").read_bytes()
    files = snapshot(out)
    capsys.readouterr()
    assert main(["--quiet", "validate", "--run", str(out), *map(str, args)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert fragment in errors[0], errors[0]
    assert (out / "manifest.json").read_bytes() == before
    assert snapshot(out) == files                             # nothing written or touched


def edit_manifest(out, **fields):
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update(fields)
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_bad_input_is_refused_with_nothing_written(runs, tmp_path, capsys):
    out = fresh_copy(runs["ekfac"], tmp_path / "run")
    expect_refused(out, capsys, "--k", "25", fragment="larger than the corpus (24 documents)")
    expect_refused(out, capsys, "--queries", "9", fragment="more than the run's 5 queries")
    expect_refused(out, capsys, "--strategy-runs", tmp_path / "nope", fragment="nope")
    edit_manifest(out, model=str(tmp_path / "missing-model"), fit_key={"model": str(tmp_path / "missing-model")})
    expect_refused(out, capsys, fragment="cannot load the run's model")
    edit_manifest(out, status="scoring")
    expect_refused(out, capsys, fragment="validate needs a complete run")


def test_resume_after_kill_then_add_a_method(runs, validated, tmp_path):
    """Killed after 2 queries: the rerun re-uses every kept file and equals an uninterrupted run; adding
    --strategy-runs afterwards computes only the new method's sets."""
    out = fresh_copy(runs["ekfac"], tmp_path / "run")
    killed = run_cli("validate", "--run", out, *FLAGS, env={EXIT_AFTER_ENV: "2"}, check=False)
    assert killed.returncode == 75, killed.stderr
    chunks = sorted(os.listdir(out / "validation_chunks"))
    assert [name.split(".")[0] for name in chunks] == ["lr", "meta"] + ["query_000000"] * 2 + \
        ["query_000001"] * 2 + [f"random_{draw:04d}" for draw in range(4)]
    assert not os.path.exists(out / "analysis" / "validation.parquet")
    kept = next(p for p in (out / "validation_chunks").glob("query_000000.*")
                if pd.read_parquet(p)["method"].iloc[0] == "ekfac")
    mark(kept)
    run_cli("validate", "--run", out, *FLAGS)
    assert not os.path.exists(out / "validation_chunks")
    expected = table(validated)
    assert_equal_but_marked(table(out), expected.query("method != 'identity'").reset_index(drop=True))

    mark(out / "analysis" / "validation.parquet", method="bm25")
    run_cli("validate", "--run", out, *FLAGS, "--strategy-runs", runs["identity"])
    result = table(out)
    assert (result.query("method == 'bm25'")["logprob_before"] == 123.0).sum() == 1   # re-used, not recomputed
    assert_equal_but_marked(result, expected)


def mark(path, method="ekfac"):
    """Set logprob_before of one query's `method` rows to 123.0: a trace that survives only if the rows are re-used."""
    frame = pd.read_parquet(path)
    first = (frame["query_id"] == frame["query_id"].iloc[0]) & (frame["method"] == method)
    frame.loc[first, "logprob_before"] = 123.0
    frame.to_parquet(path, index=False)


def assert_equal_but_marked(result, expected):
    marked = result["logprob_before"] == 123.0
    assert marked.any()
    result = result.copy()
    result.loc[marked, "logprob_before"] = expected.loc[marked, "logprob_before"]
    pd.testing.assert_frame_equal(result, expected)


def test_calibration_sets_are_not_patched_again(runs, validated, tmp_path, monkeypatch):
    """--lr auto takes each probe set's gradient once (for its first-order slope and every lr tried) and measures
    the probe queries' own top/bottom sets at the lr it picks; validating those sets later re-uses that measurement
    instead of taking the same SGD step again (same rows as the CLI run)."""
    from engine.tailpatch import TailPatch
    from precompute.validation.command import ValidateOptions, validate_run

    real, calls = TailPatch.set_gradient, []

    def counted(self, documents):
        calls.append(len(documents))
        return real(self, documents)
    monkeypatch.setattr(TailPatch, "set_gradient", counted)
    out = fresh_copy(runs["ekfac"], tmp_path / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # as the CLI run it is compared with (run_cli: OMP_NUM_THREADS=1)
    try:
        validate_run(str(out), ValidateOptions(k=3, random_draws=4, strategy_runs=[str(runs["identity"])]),
                     progress=False)
    finally:
        torch.set_num_threads(threads)
    tries = len(json.loads((out / "manifest.json").read_text())["validation"]["calibration"]["tried"])
    probe_sets, other_sets, random_sets = 10, 15, 4    # 5 queries, all probed: ekfac top+bottom; identity, bm25
    assert calls.count(1) == probe_sets                # first order: one query gradient per probe set
    assert calls.count(3) == probe_sets + random_sets + other_sets     # was probe_sets · (2 + tries) + the rest
    assert tries >= 1
    pd.testing.assert_frame_equal(table(out), table(validated))
