"""One writer per run directory (issue 15): a second writer is refused naming the holder's PID; kill -9 of the
holder releases the lock and a new writer resumes the run; readers are never blocked."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from precompute import rundir
from precompute.rundir import RunLock, read_run, writer_pid
from tests.precompute.conftest import ROOT, run_args, run_cli
from tests.precompute.test_bad_inputs import expect_error


def start_paused_run(world, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, "PRECOMPUTE_TEST_PAUSE_AFTER_CHUNKS": "1"}
    return subprocess.Popen([sys.executable, "-m", "precompute", "--quiet", *map(str, run_args(world, out))],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_chunk(out, process, timeout=240):
    chunks = out / "chunks"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if chunks.is_dir() and any(name.startswith("chunk_") for name in os.listdir(chunks)):
            return
        if process.poll() is not None:
            raise AssertionError(f"writer exited early: {process.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("no score chunk written in time")


def test_second_writer_refused_then_kill_9_and_resume(world, tmp_path):
    out = tmp_path / "run"
    first = start_paused_run(world, out)
    try:
        wait_for_chunk(out, first)
        assert writer_pid(str(out)) == first.pid
        with pytest.raises(rundir.RunError, match=f"in progress .*PID {first.pid}"):
            read_run(out)                                   # a reader is not blocked: it says "in progress"
        for command in (run_args(world, out), ["analyze", "--run", out]):
            error = expect_error(run_cli(*command, check=False), str(out), f"PID {first.pid}")
            assert "being written" in error
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert writer_pid(str(out)) is None                   # the holder is gone: no writer any more
    kept = {name for name in os.listdir(out / "chunks") if name.startswith("chunk_")}
    assert kept, "the killed run's chunks are kept for resuming"
    resumed = subprocess.run([sys.executable, "-m", "precompute", *map(str, run_args(world, out))], cwd=ROOT,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT},
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(kept)} score chunks already written" in resumed.stderr
    run = read_run(out)
    assert run.manifest["status"] == "complete" and np.isfinite(np.asarray(run.scores)).all()


def test_lock_is_exclusive_across_processes_and_released_on_exit(tmp_path):
    out = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from precompute.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(60)"), out], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(rundir.RunDirError, match=f"being written by PID {holder.pid}"):
            RunLock(out).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(out):
        assert writer_pid(out) == os.getpid()
    assert writer_pid(out) is None


def test_out_pointing_at_a_file_is_one_clear_line(world, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a run")
    expect_error(run_cli(*run_args(world, target), check=False), str(target), "a file of that name exists")
