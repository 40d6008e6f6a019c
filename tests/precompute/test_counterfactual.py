"""`precompute counterfactual` end to end on the tiny world: the predictions are the methods' score sums over each
set, the LDS tables and findings follow, stored responses are re-used and stale ones refused, bad input is one
line with nothing written. (The PBRF solver itself is checked against exact damped influence in
tests/engine/test_pbrf.py.)"""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from precompute.analysis.lds import crossed_bootstrap_lds, lds_per_query
from tests.conftest import COUNTERFACTUAL_FLAGS, without_counterfactual
from tests.precompute.conftest import run_cli


@pytest.fixture(scope="module")
def runs(model_runs):
    """The complete ekfac and identity runs of the tiny world (never changed in place)."""
    return model_runs


@pytest.fixture(scope="module")
def done(counterfactual_run):
    """(run, CompletedProcess) of the session's counterfactual (tests/conftest.py)."""
    return counterfactual_run


def listing(path):
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*")
                  if p.is_file() and p.name != ".lock")


def test_predictions_are_score_sums_over_the_sets(done, runs):
    out, _ = done
    frame = pd.read_parquet(out / "analysis" / "counterfactual.parquet")
    responses = json.loads((out / "counterfactual" / "responses.json").read_text())
    assert set(frame["method"]) == {"ekfac", "ekfac/‖g_d‖", "identity", "identity/‖g_d‖", "bm25"}
    scores = np.load(out / "scores.npy")
    identity = np.load(runs["identity"] / "scores.npy")
    queries = [json.loads(line)["id"] for line in open(out / "queries.jsonl")]
    for method, matrix in (("ekfac", scores), ("identity", identity)):
        rows = frame[frame["method"] == method]
        for _, row in rows.iterrows():
            columns = responses["set_columns"][int(row["set"])]
            expected = matrix[queries.index(row["query_id"]), columns].astype(np.float64).sum()
            assert row["predicted"] == pytest.approx(expected, rel=1e-5, abs=1e-9)
            assert row["measured"] == responses["delta"][int(row["set"])][responses["query_ids"].index(row["query_id"])]
    assert len(responses["delta"]) == 4 and all(len(d) == len(queries) for d in responses["delta"])
    assert responses["epsilon"] > 0 and responses["calibration"]["tried"]
    assert all(d["converged"] and d["relative_grad_norm"] <= 1e-4 for d in responses["diagnostics"]), \
        responses["diagnostics"]
    assert np.abs(np.asarray(responses["delta"])).max() > 0


def test_lds_tables_and_findings(done):
    out, _ = done
    frame = pd.read_parquet(out / "analysis" / "counterfactual.parquet")
    per_query = pd.read_parquet(out / "analysis" / "lds_queries.parquet")
    summary = pd.read_parquet(out / "analysis" / "lds_summary.parquet")
    one = frame[(frame["method"] == "ekfac") & (frame["query_id"] == "q0")].sort_values("set")
    expected = stats.spearmanr(one["measured"], one["predicted"]).statistic
    got = per_query[(per_query["method"] == "ekfac") & (per_query["query_id"] == "q0")]["lds"].iloc[0]
    assert got == pytest.approx(expected)
    overall = summary[summary["task"] == "all"].set_index("method")
    assert overall.loc["ekfac", "lds_mean"] == pytest.approx(
        per_query[per_query["method"] == "ekfac"]["lds"].mean())
    assert np.isnan(overall.loc["identity", "minus_identity"])
    findings = json.loads((out / "analysis" / "findings.json").read_text())["findings"]
    names = {f["name"] for f in findings}
    assert {"counterfactual.ekfac.lds_above_zero", "counterfactual.ekfac_vs_identity"} <= names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counterfactual"]["source"] == "computed" and manifest["status"] == "complete"


def test_stored_responses_reused_and_stale_refused(done, tmp_path):
    out, _ = done
    store = tmp_path / "store"
    shutil.copytree(out / "counterfactual", store)
    again = without_counterfactual(out, tmp_path / "again")
    run_cli("counterfactual", "--run", again, *COUNTERFACTUAL_FLAGS, "--responses", store, "--no-bm25")
    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["counterfactual"]["source"] == "stored"
    a = pd.read_parquet(out / "analysis" / "counterfactual.parquet")
    b = pd.read_parquet(again / "analysis" / "counterfactual.parquet")
    assert np.array_equal(a[a["method"] == "ekfac"]["measured"], b[b["method"] == "ekfac"]["measured"])
    before = listing(again)
    stale = run_cli("counterfactual", "--run", again, *COUNTERFACTUAL_FLAGS[:-2], "--linearity-sets", "2",
                    "--responses", store, check=False)
    assert stale.returncode == 2 and "stale PBRF responses" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1
    assert listing(again) == before


@pytest.mark.parametrize("case", ["too_big", "too_few_sets", "scoring", "no_model", "undamped"])
def test_bad_input_one_line_nothing_written(runs, tmp_path, case):
    run = without_counterfactual(runs["identity" if case == "undamped" else "ekfac"], tmp_path / "run")
    args = list(COUNTERFACTUAL_FLAGS)
    if case == "too_big":
        args[args.index("--set-size") + 1] = "1000"
    elif case == "too_few_sets":
        args[args.index("--sets") + 1] = "2"
    elif case == "scoring":
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, "status": "scoring"}))
    elif case == "no_model":
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, "synthetic": True}))
    before = listing(run)
    result = run_cli("counterfactual", "--run", run, *args, check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
    assert listing(run) == before


def test_unconverged_solves_refused_with_one_line(runs, tmp_path):
    """Too few conjugate-gradient iterations: exit 2 naming the residual; no LDS table or finding is written."""
    run = without_counterfactual(runs["ekfac"], tmp_path / "run")
    args = list(COUNTERFACTUAL_FLAGS)
    args[args.index("--max-iterations") + 1] = "2"
    before = [entry for entry in listing(run) if not entry[0].startswith("counterfactual")]
    result = run_cli("counterfactual", "--run", run, *args, check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "did not converge" in result.stderr
    assert [entry for entry in listing(run) if not entry[0].startswith("counterfactual")] == before


def test_lds_per_query_against_scipy_spearman():
    rng = np.random.default_rng(0)
    measured = rng.normal(size=(12, 5))
    predicted = measured + rng.normal(scale=[0.1, 1, 3, 10, 0.5], size=(12, 5))
    predicted[:3, 2] = predicted[3, 2]                              # ties
    got = lds_per_query(measured, predicted)
    want = [stats.spearmanr(measured[:, q], predicted[:, q]).statistic for q in range(5)]
    assert np.allclose(got, want)
    assert np.isnan(lds_per_query(measured, np.ones_like(measured))).all()


def test_crossed_bootstrap_pairs_the_methods():
    rng = np.random.default_rng(1)
    measured = rng.normal(size=(20, 30))
    good, bad = measured + rng.normal(scale=0.3, size=measured.shape), rng.normal(size=measured.shape)
    boot = crossed_bootstrap_lds(measured, [good, good, bad], n_boot=300, seed=0)
    assert np.array_equal(boot[:, 0], boot[:, 1])                  # the same resamples for every method
    assert np.percentile(boot[:, 0] - boot[:, 2], 2.5) > 0.5       # a planted gap is found
    assert abs(np.median(boot[:, 2])) < 0.1                         # unrelated scores sit at zero
