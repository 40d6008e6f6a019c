"""The exported report (dashboard/report.py): one HTML file that references no host, whose embedded numbers its own
script regenerates from the run directory (run here as a separate process) and which agree with the run's files
read independently; a changed run is reported by the script."""
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from dashboard import report
from precompute import rundir

HOST = re.compile(r"https?://", re.I)
PLOTLY_JS = re.compile(r"<script type='text/javascript'>.*?</script>", re.S)


def exported(run, tmp_path, query_set=None, opened=None):
    page, script = report.export(str(run), query_set, made="Made in a test.", opened=opened)
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    (tmp_path / "reproduce_report.py").write_text(script, encoding="utf-8")
    return page


def reproduce(tmp_path, *args):
    """Run the report's script from another folder, as a reader would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(tmp_path / "reproduce_report.py"), *args, "--compare",
                           str(tmp_path / "report.html"), "--out", str(tmp_path / "again")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_the_script_regenerates_every_number_and_the_run_agrees(run_dir, tmp_path):
    page = exported(run_dir, tmp_path)
    done = reproduce(tmp_path)
    assert done.returncode == 0 and "every number agrees" in done.stdout, done.stdout + done.stderr
    embedded = report.embedded_numbers(page)
    again = json.loads((tmp_path / "again" / "report_numbers.json").read_text())
    assert again == embedded
    assert report.embedded_numbers((tmp_path / "again" / "report.html").read_text()) == embedded
    # against the run's files, read here without the project's code
    run_findings = json.loads((run_dir / "analysis" / "findings.json").read_text())
    fields = ("name", "effect", "ci_low", "ci_high", "verdict")
    assert [tuple(r[f] for f in fields) for r in embedded["findings"]["findings"]] \
        == [tuple(r[f] for f in fields) for r in run_findings["findings"]]
    tasks = Counter(json.loads(line)["task"] for line in (run_dir / "queries.jsonl").read_text().splitlines())
    assert embedded["counts"]["queries_per_task"] == dict(tasks)
    assert embedded["hashes"]["scores.npy"] == hashlib.sha256((run_dir / "scores.npy").read_bytes()).hexdigest()
    assert set(embedded["hashes"]) >= {"manifest.json", "queries.jsonl", "documents.parquet", "scores.npy"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert embedded["settings"]["run_settings"]["strategy"] == manifest["strategy"]
    assert embedded["settings"]["run_settings"]["counts.documents"] == manifest["counts"]["documents"]
    # the forest plot's data is in the page: its first panel's points are findings' effects
    assert "forest-plot" in page and "Findings" in page
    # the analysis views' charts carry their tables, equal to the run's parquet files read here
    views = (("task_correlations", "task-correlations"), ("magnitude_by_task", "magnitude"),
             ("answer_enrichment", "answers"), ("source_multipliers", "sources"))
    for name, div in views:
        frame = pd.read_parquet(run_dir / "analysis" / f"{name}.parquet")
        assert len(embedded["views"][name]) == len(frame) > 0
        assert np.allclose(pd.DataFrame(embedded["views"][name]).select_dtypes("number").to_numpy(dtype=float),
                           frame.select_dtypes("number").to_numpy(dtype=float), equal_nan=True)
        assert f"id='{div}'" in page or f'id="{div}"' in page


def test_the_report_references_no_host(run_dir, tmp_path):
    page = exported(run_dir, tmp_path)
    assert len(PLOTLY_JS.findall(page)) == 1                       # plotly.js inlined once
    outside = PLOTLY_JS.sub("", page)
    assert not HOST.findall(outside)
    assert not re.search(r"<(?:script|link|img|iframe)[^>]*(?:src|href)\s*=", page, re.I)


def test_a_query_set_report_and_a_changed_run(run_dir, tmp_path):
    queries = [json.loads(line) for line in (run_dir / "queries.jsonl").read_text().splitlines()]
    chosen = [q["id"] for q in queries if q["task"] in ("factual", "slopes")][:-1]
    run = shutil.copytree(run_dir, tmp_path / "run")
    query_set = {"name": "factual and slopes <script>alert(5)</script>", "expression": 'task in ["factual", "slopes"]',
                 "query_ids": chosen}
    opened = {"id": chosen[1], "kind": "normalized", "k": 4}
    page = exported(run, tmp_path, query_set, opened)
    embedded = report.embedded_numbers(page)
    _assert_opened_query(run, embedded["query"], opened)
    assert f"The opened query: {chosen[1]}" in page and "id='query-layers'" in page.replace('"', "'")
    assert embedded["settings"]["query_set"] == query_set and embedded["findings"]["query_ids"] == sorted(chosen)
    assert sum(embedded["counts"]["queries_per_task"].values()) == len(chosen)
    assert "factual and slopes &lt;script&gt;" in page and "<script>alert(5)" not in page
    assert embedded["findings"]["findings"]
    scores = np.load(run / rundir.SCORES)
    np.save(run / rundir.SCORES, scores * np.float32(1.5) + np.float32(0.01))
    done = reproduce(tmp_path, str(run))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "scores.npy: differs" in done.stdout and "numbers DIFFER" in done.stdout


def _assert_opened_query(run, numbers, opened):
    """The opened query's documents and per-layer sums, against the run's files read here with numpy: a full sort
    of normalised scores (raw ÷ ‖G_d‖) and the layer matrix summed by sign in a loop."""
    queries = [json.loads(line) for line in (run / "queries.jsonl").read_text().splitlines()]
    row = [q["id"] for q in queries].index(opened["id"])
    values = np.load(run / rundir.NORMALIZED_SCORES)[row].astype(np.float64)
    ids = pd.read_parquet(run / rundir.DOCUMENTS, columns=["id"])["id"].to_numpy()
    order = sorted(range(len(values)), key=lambda column: (-values[column], column))
    k = opened["k"]
    assert [d["doc_id"] for d in numbers["top"]] == list(ids[order[:k]])
    assert [d["rank"] for d in numbers["top"]] == list(range(1, k + 1))
    assert np.allclose([d["score"] for d in numbers["top"]], values[order[:k]], rtol=1e-6)
    lowest = sorted(range(len(values)), key=lambda column: (values[column], column))[:k]
    assert [d["doc_id"] for d in numbers["bottom"]] == list(ids[lowest])
    layers = np.load(run / rundir.LAYER_SCORES)[row]
    positive = [sum(float(v) for v in layer if v > 0) for layer in layers]
    negative = [sum(float(v) for v in layer if v < 0) for layer in layers]
    assert np.allclose(numbers["layers"]["positive"], positive, rtol=1e-5)
    assert np.allclose(numbers["layers"]["negative"], negative, rtol=1e-5)
    assert numbers["query"]["id"] == opened["id"] and numbers["kind"] == "normalized"


def test_embedded_numbers_refuses_other_pages():
    with pytest.raises(ValueError, match="not an Influence Explorer report"):
        report.embedded_numbers("<html></html>")


def test_views_draw_from_json_where_numbers_are_missing(run_dir):
    """NaN becomes null in the report's JSON (a task pair with one query has no interval); the views still draw
    and see NaN again, as the pages do."""
    table = pd.read_parquet(run_dir / "analysis" / "task_correlations.parquet")
    records = json.loads(json.dumps(table.to_dict("records"), default=float).replace("NaN", "null"))
    records[0].update(ci_low=None, ci_high=None, mean_pearson=None)
    frame = report.records_frame(records)
    assert frame["ci_low"].dtype.kind == "f" and np.isnan(frame.loc[0, "ci_low"])
    drawn = report.view_figures({"views": {"task_correlations": records}, "counts": {}})
    assert list(drawn) == ["task-correlations"]
