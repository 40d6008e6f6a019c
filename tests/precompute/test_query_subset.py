"""Findings on a subset of a run's queries (precompute/analysis/query_subset.py) equal `precompute analyze` on a
run directory that holds only those queries (made here by slicing the files: an independent path)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from precompute import rundir
from precompute.analysis import load_inputs
from precompute.analysis.query_subset import QuerySubsetError, subset_findings
from tests.dashboard.conftest import ROOT, synth_run


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synth_run(tmp_path_factory.mktemp("subset") / "run")


def restricted_copy(run, out, query_ids):
    """A run directory with only `query_ids`' score rows and queries (no other stage's files)."""
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("analysis", "factors"))
    queries = rundir.read_jsonl(str(run / rundir.QUERIES))
    rows = [i for i, q in enumerate(queries) if q["id"] in set(query_ids)]
    for name in (rundir.SCORES, rundir.LAYER_SCORES, rundir.NORMALIZED_SCORES):
        np.save(out / name, np.load(run / name)[rows])
    rundir.write_jsonl(str(out / rundir.QUERIES), [queries[i] for i in rows])
    manifest = json.loads((out / rundir.MANIFEST).read_text())
    manifest["counts"]["queries"] = len(rows)
    (out / rundir.MANIFEST).write_text(json.dumps(manifest))
    subprocess.run([sys.executable, "-m", "precompute", "--quiet", "analyze", "--run", str(out)], cwd=ROOT,
                   check=True, capture_output=True)
    return json.loads((out / rundir.ANALYSIS_DIR / rundir.FINDINGS).read_text())


def comparable(document):
    return [{key: record.get(key) for key in ("name", "effect", "ci_low", "ci_high", "n", "verdict", "holm_p",
                                              "adjusted_verdict", "text")} for record in document["findings"]]


@pytest.mark.parametrize("tasks", [("factual", "slopes", "arithmetic"), ("factual", "linear_equation")])
def test_subset_findings_equal_the_analysis_of_a_restricted_run(synthetic, tmp_path, tasks):
    queries = rundir.read_jsonl(str(synthetic / rundir.QUERIES))
    chosen = [q["id"] for q in queries if q["task"] in tasks][1:]        # drop one: not whole tasks
    found = subset_findings(load_inputs(rundir.RunDir(str(synthetic))), chosen[::-1])
    expected = restricted_copy(synthetic, tmp_path / "restricted", chosen)
    assert found["findings"], "the subset has findings to compare"
    assert comparable(found) == comparable(expected)
    assert found["query_ids"] == chosen
    whole = json.loads((synthetic / rundir.ANALYSIS_DIR / rundir.FINDINGS).read_text())
    assert comparable(found) != comparable(whole)


def test_unknown_or_no_queries_are_refused(synthetic):
    inputs = load_inputs(rundir.RunDir(str(synthetic)))
    with pytest.raises(QuerySubsetError, match="1 query id"):
        subset_findings(inputs, ["q0000", "nope"])
    with pytest.raises(QuerySubsetError, match="no queries"):
        subset_findings(inputs, [])
