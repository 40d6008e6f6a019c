"""One writer per run directory: an OS-level lock (flock) on RUN/.lock, held for a command's whole duration.

The operating system releases the lock when the holding process dies (even by kill -9), so a killed run can be
resumed at once. The holder writes its PID into the lock file so that a refused writer, and readers such as the
dashboard, can say who is writing; readers never take the lock.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from precompute.rundir import layout
from precompute.rundir.directory import RunDirError


class RunLock:
    """`with RunLock(path):` — exclusive, non-blocking; a second writer gets RunDirError naming the holder."""

    def __init__(self, path: str, create: bool = True):
        self.path, self.create = path, create
        self.lock_path = os.path.join(path, layout.LOCK)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirError(f"{self.path}: --out must be a run directory, but a file of that name exists")
        if not self.create and not os.path.isdir(self.path):
            raise RunDirError(f"{self.path}: no run directory there")
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = read_pid(self.lock_path)
            who = f"PID {holder}" if holder else "another process"
            raise RunDirError(f"{self.path}: run directory is being written by {who}; wait for it to finish "
                              "or stop it (only one writer at a time)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_pid(lock_path: str) -> int | None:
    try:
        with open(lock_path, encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def writer_pid(path: str) -> int | None:
    """PID of the live process writing the run at `path`, or None (no writer, or it died)."""
    pid = read_pid(os.path.join(path, layout.LOCK))
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


class WaitingFileLock:
    """`with WaitingFileLock(path, error, what):` — an exclusive flock on `path`, waited for up to `timeout_s`;
    for the small files the dashboard writes beside a run (labels, query sets), where two browser tabs may write at
    once. Problems raise `error` (an exception class) with a message naming the lock file and `what` it guards."""

    def __init__(self, path: str, error: type[Exception], what: str, timeout_s: float = 10.0):
        self.path, self.error, self.what, self.timeout_s = path, error, what, timeout_s

    def __enter__(self) -> "WaitingFileLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise self.error(f"{self.path}: cannot write {self.what} beside this run ({err})") from None
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise self.error(f"{self.path}: another writer has held the {self.what} lock for "
                                     f"{self.timeout_s:.0f} s; try again") from None
                time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
