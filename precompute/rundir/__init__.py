"""The run directory: the one contract between the pipeline (writes) and the dashboard (reads). No torch.

- layout:    file names, statuses, fixed columns
- files:     atomic writes and plain readers (JSON, JSON lines, .npy, Parquet)
- directory: RunDir (manifest, status, timings, fresh start)
- lock:      one writer per run directory (flock)
- chunks:    resumable score chunks
- writers:   the data files (scores, documents, queries, layers, token scores, factor files)
- factor_files: which files hold the factors (one, or one per module shard) and their fingerprint
- reader:    Run, read_run (what the dashboard uses)
- labels, query_sets: the researcher's files beside a run (the dashboard's only writes; edited_files reads
  and writes them, each under its lock)
Every file and column: docs/run-directory.md.
"""
from precompute.rundir.chunks import ChunkStore, chunk_ranges
from precompute.rundir.factor_files import factor_tensor_files, factors_sha256, shard_file_names
from precompute.rundir.directory import RunDir, RunDirError, new_manifest, package_versions, utc_now
from precompute.rundir.files import (AtomicMemmap, atomic_path, read_json, read_jsonl, read_npy, sha256_of_file,
                                     sha256_of_strings, write_json, write_jsonl, write_npy, write_parquet)
from precompute.rundir.layout import *  # noqa: F401,F403  (file names and statuses)
from precompute.rundir.lock import RunLock, writer_pid
from precompute.rundir.reader import Run, RunError, read_run

__all__ = ["AtomicMemmap", "ChunkStore", "Run", "RunDir", "RunDirError", "RunError", "RunLock", "atomic_path",
           "chunk_ranges", "factor_tensor_files", "factors_sha256", "new_manifest", "package_versions", "read_json", "read_jsonl", "read_npy", "read_run",
           "sha256_of_file", "sha256_of_strings", "shard_file_names", "utc_now", "write_json", "write_jsonl", "write_npy", "write_parquet", "writer_pid"]
