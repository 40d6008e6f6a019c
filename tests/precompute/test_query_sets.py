"""Saved query sets beside a run (precompute/rundir/query_sets.py): save, replace, delete, reload, two concurrent
writers, invalid files reported and kept."""
import json
import os

import pytest

from precompute.rundir import layout
from precompute.rundir import query_sets
from tests.precompute.conftest import race_two_writers


def test_sets_are_saved_replaced_deleted_and_read_back(tmp_path):
    query_sets.save_query_set(tmp_path, "slope, correct only", 'task == "slope" and correct == True')
    query_sets.save_query_set(tmp_path, "  long  ", "nats > 2")
    query_sets.save_query_set(tmp_path, "slope, correct only", 'task == "slope"')   # replaced in place
    query_sets.delete_query_set(tmp_path, "nothing of that name")
    found = query_sets.read_query_sets(tmp_path)
    assert [(s.name, s.expression) for s in found.sets] == [("slope, correct only", 'task == "slope"'),
                                                            ("long", "nats > 2")]
    assert found.revision == 4 and found.named("long").expression == "nats > 2"
    query_sets.delete_query_set(tmp_path, "long")
    on_disk = json.loads((tmp_path / layout.QUERY_SETS).read_text())
    assert on_disk == {"format": 1, "revision": 5, "sets": [{"name": "slope, correct only",
                                                             "expression": 'task == "slope"'}]}
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert query_sets.read_query_sets(tmp_path / "nowhere").sets == ()


def test_names_are_checked(tmp_path):
    with pytest.raises(query_sets.QuerySetsError, match="needs a name"):
        query_sets.save_query_set(tmp_path, "   ", "nats > 1")
    with pytest.raises(query_sets.QuerySetsError, match=f"at most {query_sets.MAX_NAME_CHARS} characters"):
        query_sets.save_query_set(tmp_path, "x" * (query_sets.MAX_NAME_CHARS + 1), "nats > 1")
    assert not (tmp_path / layout.QUERY_SETS).exists()


def _writer(path, prefix, n, barrier):
    barrier.wait()
    for i in range(n):
        query_sets.save_query_set(path, f"{prefix}{i}", f"nats > {i}")
        query_sets.save_query_set(path, "shared", f'task == "{prefix}"')


def test_two_concurrent_writers_lose_nothing(tmp_path):
    race_two_writers(_writer, tmp_path, 20)
    found = query_sets.read_query_sets(tmp_path)
    assert {s.name for s in found.sets} == {f"a{i}" for i in range(20)} | {f"b{i}" for i in range(20)} | {"shared"}
    assert found.named("shared").expression in ('task == "a"', 'task == "b"')
    assert found.revision == 80


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"format": 2, "sets": []}', "field `format` is 2"),
    ('{"format": 1, "sets": [{"name": "a"}]}', "item 0: needs `name` and `expression`"),
    ('{"format": 1, "sets": [{"name": "a", "expression": "x"}, {"name": "a", "expression": "y"}]}',
     "the name 'a' is used twice"),
])
def test_an_invalid_file_is_reported_and_kept(tmp_path, text, message):
    path = tmp_path / layout.QUERY_SETS
    path.write_text(text)
    with pytest.raises(query_sets.QuerySetsError, match=message) as raised:
        query_sets.read_query_sets(tmp_path)
    assert str(path) in str(raised.value) and "left as it is" in str(raised.value)
    with pytest.raises(query_sets.QuerySetsError, match=message):
        query_sets.save_query_set(tmp_path, "b", "nats > 1")
    assert path.read_text() == text
