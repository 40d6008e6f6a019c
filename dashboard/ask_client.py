"""The dashboard's side of the ask worker (precompute/index/worker.py), without torch.

The worker is a subprocess started on first use; it keeps the run's model, factors and index loaded and talks
JSON lines over its stdin/stdout pipes — nothing listens on a network port. It exits when the dashboard exits
(its stdin closes, or it sees its parent gone). Whether a run has an index is read here from
RUN/index/manifest.json; whether that index is stale (factors, model or documents changed, by hashes) the worker
finds out while starting and says so in its error.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

from precompute.rundir import layout

ROOT = Path(__file__).resolve().parents[1]
INDEX_MANIFEST = Path(layout.INDEX_DIR) / layout.INDEX_MANIFEST
START_TIMEOUT_S = 600.0
ANSWER_TIMEOUT_S = 600.0


class AskError(Exception):
    """A question that cannot be answered, or a worker that cannot start; the message is written for the page."""


def index_problem(run_dir: str | Path) -> str | None:
    """Why the run cannot answer questions (no index, unfinished index), or None when it has a complete index."""
    path = Path(run_dir) / INDEX_MANIFEST
    command = f"python -m precompute index --run {run_dir}"
    if not path.exists():
        return f"This run has no index for new questions. Build one with `{command}` (one pass over the corpus)."
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"The run's index manifest `{path}` cannot be read ({error}); rebuild it with `{command} --overwrite`."
    status = manifest.get("status") if isinstance(manifest, dict) else None
    if status != "complete":
        return f"The run's index is not complete (status `{status}`); finish it with `{command}`."
    return None


def index_summary(run_dir: str | Path) -> dict:
    """The index manifest's method, rank, dimension, dtype, bytes per document, self-check (for a caption)."""
    manifest = json.loads((Path(run_dir) / INDEX_MANIFEST).read_text(encoding="utf-8"))
    return {key: manifest.get(key) for key in ("method", "rank", "dim", "dtype", "bytes_per_document", "n_documents",
                                               "check")}


class AskWorker:
    """One worker process for one run directory; `start` and `ask` may be called from several threads."""

    def __init__(self, run_dir: str | Path, device: str = "cpu", python: str = sys.executable):
        self.run_dir, self.device, self.python = str(run_dir), device, python
        self.process: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.ready: dict | None = None
        self.failure: str | None = None
        self.log_path: str | None = None
        self.counter = 0
        atexit.register(self.close)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep), "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
        handle, self.log_path = tempfile.mkstemp(prefix="ask-worker-", suffix=".log")
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(
                [self.python, "-m", "precompute.index.worker", "--run", self.run_dir, "--device", self.device,
                 "--parent", str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                close_fds=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.process, self.lines), daemon=True).start()

    @staticmethod
    def _read(process: subprocess.Popen, lines: queue.Queue) -> None:
        for raw in process.stdout:
            lines.put(raw)
        lines.put(None)           # end of output: the worker exited

    def _next(self, timeout_s: float) -> dict:
        try:
            raw = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AskError(f"the ask worker did not answer within {timeout_s:.0f} s") from None
        if raw is None:
            raise AskError(f"the ask worker stopped unexpectedly{self._log_tail()}")
        try:
            return json.loads(raw)
        except ValueError:
            raise AskError(f"the ask worker sent an unreadable message: {raw[:200]!r}") from None

    def _log_tail(self) -> str:
        try:
            text = Path(self.log_path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except (OSError, TypeError):
            return ""
        return f" (last log line: {text[-1]})" if text else ""

    def start(self, on_progress: Callable[[str], None] = lambda message: None,
              timeout_s: float = START_TIMEOUT_S) -> dict:
        """Start the worker if needed and wait until it is ready; raises AskError (and keeps the reason, so a
        worker that cannot start is not started again for every question)."""
        with self.lock:
            if self.failure is not None:
                raise AskError(self.failure)
            if self.ready is not None and self.running():
                return self.ready
            self.ready = None
            self._spawn()
            while True:
                message = self._next(timeout_s)
                if message.get("event") == "progress":
                    on_progress(str(message.get("message", "")))
                elif message.get("event") == "ready":
                    self.ready = message.get("index", {})
                    return self.ready
                elif message.get("event") == "error":
                    self.failure = str(message.get("message", "the ask worker could not start"))
                    self._stop()
                    raise AskError(self.failure)

    def ask(self, prompt: str, completion: str | None = None, generate: bool = False, top: int = 20,
            token_docs: int = 10, timeout_s: float = ANSWER_TIMEOUT_S) -> dict:
        """The worker's result for one question (see precompute/index/ask.py); AskError with its one-line reason."""
        self.start()
        with self.lock:
            self.counter += 1
            request = {"id": self.counter, "prompt": prompt, "completion": completion, "generate": generate,
                       "top": top, "token_docs": token_docs}
            try:
                self.process.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                self.ready = None
                raise AskError(f"the ask worker stopped unexpectedly{self._log_tail()}") from None
            while True:
                reply = self._next(timeout_s)
                if reply.get("id") == self.counter:
                    break
        if not reply.get("ok"):
            raise AskError(str(reply.get("error", "the question could not be answered")))
        return reply["result"]

    def _stop(self) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        """Stop the worker (closing its stdin ends it) and forget it."""
        self._stop()
        self.process, self.ready = None, None
