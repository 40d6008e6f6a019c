"""Document labels beside a run: reload, two concurrent writers, CSV round trip, invalid files kept."""
import json
import os

import pytest

from precompute.rundir import labels as run_labels
from precompute.rundir import layout
from tests.precompute.conftest import race_two_writers


def test_labels_survive_reload(tmp_path):
    run_labels.set_label(tmp_path, "d1", "teaches the procedure")
    run_labels.set_label(tmp_path, "d2", "unrelated")
    run_labels.set_label(tmp_path, "d2", "states the answer")
    run_labels.set_label(tmp_path, "d3", "unrelated")
    run_labels.set_label(tmp_path, "d3", None)
    run_labels.add_sample(tmp_path, ["d7", "d8", "d7"])
    found = run_labels.read_labels(tmp_path)
    assert found.labels == {"d1": "teaches the procedure", "d2": "states the answer"}
    assert found.sample == ("d7", "d8") and found.revision == 6
    on_disk = json.loads((tmp_path / layout.LABELS).read_text())
    assert on_disk["labels"] == found.labels and on_disk["format"] == 1
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def _writer(path, prefix, n, barrier):
    barrier.wait()
    for i in range(n):
        run_labels.set_label(path, f"{prefix}{i}", "unrelated" if prefix == "a" else "states the answer")
        run_labels.set_label(path, "shared", "unrelated" if prefix == "a" else "states the answer")


def test_two_concurrent_writers_lose_nothing(tmp_path):
    race_two_writers(_writer, tmp_path, 25)
    found = run_labels.read_labels(tmp_path)
    assert {f"a{i}" for i in range(25)} | {f"b{i}" for i in range(25)} | {"shared"} == set(found.labels)
    assert found.labels["shared"] in ("unrelated", "states the answer")   # one of them won, cleanly
    assert found.revision == 100


def test_csv_round_trip_and_import_errors(tmp_path):
    run_labels.set_label(tmp_path, "d1", "teaches the procedure")
    run_labels.set_label(tmp_path, "d,2", "unrelated")
    exported = run_labels.to_csv(run_labels.read_labels(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    run_labels.import_csv(other, exported + "d3,my own label\n", ["d1", "d,2", "d3"])
    found = run_labels.read_labels(other)
    assert found.labels == {"d1": "teaches the procedure", "d,2": "unrelated", "d3": "my own label"}
    assert found.label_set[-1] == "my own label"
    assert run_labels.to_csv(run_labels.read_labels(other)).startswith(exported.rstrip("\n").split("\n")[0])
    with pytest.raises(run_labels.LabelsError, match="line 3: field `doc_id`: 'nope'"):
        run_labels.import_csv(other, "doc_id,label\nd1,x\nnope,y\n", ["d1"])
    assert run_labels.read_labels(other) == found            # nothing written on error


def test_invalid_file_is_reported_and_kept(tmp_path):
    path = tmp_path / layout.LABELS
    path.write_text('{"format": 1, "label_set": ["a"], "labels": {"d1": "b"}}')
    with pytest.raises(run_labels.LabelsError, match="document 'd1': label 'b' is not in `label_set`"):
        run_labels.read_labels(tmp_path)
    with pytest.raises(run_labels.LabelsError):
        run_labels.set_label(tmp_path, "d2", "a")
    assert path.read_text() == '{"format": 1, "label_set": ["a"], "labels": {"d1": "b"}}'
    path.write_text("{not json")
    with pytest.raises(run_labels.LabelsError, match="not valid JSON"):
        run_labels.set_label(tmp_path, "d2", "a")
    assert path.read_text() == "{not json"
