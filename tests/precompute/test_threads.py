"""Intra-op threads: --threads over OMP_NUM_THREADS over torch's default; the Ask worker uses one thread."""
import json
import os
import subprocess
import sys

import pytest

from precompute.__main__ import build_parser
from precompute.pipeline.threads import use_threads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SET_THEN_IMPORT = ("import sys; from precompute.pipeline.threads import use_threads; "
                   "flag = None if sys.argv[1] == '-' else int(sys.argv[1]); print(use_threads(flag)); "
                   "import os, torch; print(torch.get_num_threads(), 'OMP_NUM_THREADS' in os.environ)")


def python(code: str, *args: str, omp: str | None) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env.update({"PYTHONPATH": ROOT} | ({"OMP_NUM_THREADS": omp} if omp is not None else {}))
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_flag_beats_the_environment_which_beats_the_default():
    assert python(SET_THEN_IMPORT, "1", omp="2") == ["1", "1", "True"]    # --threads 1 with OMP_NUM_THREADS=2
    assert python(SET_THEN_IMPORT, "-", omp="2") == ["2", "2", "True"]    # no flag: the environment's value
    assert python(SET_THEN_IMPORT, "-", omp=None)[::2] == ["None", "False"]   # nothing asked: torch's default kept


def test_threads_are_set_directly_when_torch_is_already_imported(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))     # restored after the test
    wanted = 1 if before != 1 else 2
    try:
        assert use_threads(wanted) == wanted and torch.get_num_threads() == wanted
        assert os.environ["OMP_NUM_THREADS"] == str(wanted)
    finally:
        torch.set_num_threads(before)


def test_model_commands_take_threads_and_torch_free_ones_do_not():
    parser = build_parser()
    args = parser.parse_args(["fit", "--model", "m", "--corpus", "c", "--out", "o", "--threads", "3"])
    assert args.threads == 3
    assert parser.parse_args(["validate", "--run", "r"]).threads is None
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "--run", "r", "--threads", "1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "--model", "m", "--corpus", "c", "--out", "o", "--threads", "0"])


def test_the_ask_worker_uses_one_thread_whatever_the_environment(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-m", "precompute.index.worker", "--run", str(tmp_path / "missing")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    first = json.loads(result.stdout.splitlines()[0])
    assert first["event"] == "progress" and "1 intra-op thread(s)" in first["message"], first
