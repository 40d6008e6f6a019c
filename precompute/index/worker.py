"""The ask worker: a local process that keeps a run's model, factors and index loaded and answers questions.

`python -m precompute.index.worker --run DIR` speaks JSON lines over its own stdin/stdout — a pipe only its
parent holds, so no other process or machine can reach it (it opens no socket). Started by the dashboard's
ask client (dashboard/ask_client.py). It exits when its parent exits: end of stdin, or the parent PID gone.

Messages out: {"event": "progress", "message": ...} while loading, then {"event": "ready", "index": {...}}
or {"event": "error", "message": ...} (and exit 2). Requests in: {"id": n, "prompt": ..., "completion": ...,
"generate": bool, "top": k, "token_docs": k}; replies: {"id": n, "ok": true, "result": {...}} or
{"id": n, "ok": false, "error": "one line"}.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import traceback

from precompute.pipeline.threads import add_threads_flag, use_threads

log = logging.getLogger("precompute.index.worker")
PARENT_POLL_S = 1.0


class Channel:
    """The protocol's output: the process's original stdout, kept for JSON lines only. Anything else printed
    (libraries, warnings) goes to stderr, so it can never corrupt a message."""

    def __init__(self):
        self._out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        self._lock = threading.Lock()

    def send(self, message: dict) -> None:
        line = json.dumps(message, ensure_ascii=False, allow_nan=False, default=float)
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, OSError):
                os._exit(0)        # the parent is gone


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_parent(followed: int | None) -> None:
    """Exit as soon as the parent is gone (this process re-parented) or the followed PID has ended, even while
    a question is being answered."""
    parent = os.getppid()

    def loop():
        while True:
            if os.getppid() != parent or (followed is not None and not alive(followed)):
                os._exit(0)
            time.sleep(PARENT_POLL_S)
    threading.Thread(target=loop, daemon=True, name="parent-watch").start()


def answer(asker, request: dict) -> dict:
    from engine.errors import EngineInputError
    from precompute.rundir.errors import UserInputError

    number = request.get("id")
    try:
        result = asker.ask(request.get("prompt", ""), request.get("completion") or None,
                           bool(request.get("generate", False)), int(request.get("top", 20)),
                           int(request.get("token_docs", 10)), answer=request.get("answer") or None,
                           measurement=request.get("measurement") or None)
        return {"id": number, "ok": True, "result": result}
    except (UserInputError, EngineInputError, ValueError, TypeError) as error:
        return {"id": number, "ok": False, "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
    except Exception as error:  # keep serving: one bad question must not take the worker down
        traceback.print_exc(file=sys.stderr)
        return {"id": number, "ok": False, "error": f"internal error ({type(error).__name__}: {error})"}


def serve(channel: Channel, asker) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as error:
            channel.send({"id": None, "ok": False, "error": f"not a JSON request ({error.msg})"})
            continue
        if not isinstance(request, dict):
            channel.send({"id": None, "ok": False, "error": "a request must be a JSON object"})
            continue
        channel.send(answer(asker, request))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m precompute.index.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None)
    parser.add_argument("--parent", type=int, default=None, help="also exit when this PID ends")
    add_threads_flag(parser, default=1)   # one thread: the worker runs beside the dashboard and other jobs
    args = parser.parse_args(argv)
    threads = use_threads(args.threads)
    channel = Channel()
    watch_parent(args.parent)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    from engine.errors import EngineInputError
    from precompute.rundir.errors import UserInputError

    channel.send({"event": "progress", "message": f"starting (loading torch; {threads} intra-op thread(s))"})
    try:
        from precompute.index.ask import Asker
        asker = Asker(args.run, args.model, args.device,
                      on_progress=lambda message: channel.send({"event": "progress", "message": message}))
    except (UserInputError, EngineInputError) as error:
        channel.send({"event": "error", "message": str(error)})
        return 2
    channel.send({"event": "ready", "index": {k: asker.manifest.get(k) for k in
                                              ("method", "rank", "dim", "dtype", "n_documents", "bytes_per_document")}})
    serve(channel, asker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
