"""A corpus as it comes at scale: one file, a directory of shards or a glob of shards, read as a stream.

Shards are `.jsonl`, `.jsonl.gz`, `.jsonl.zst` (needs the `zstandard` package) and `.parquet`, taken in sorted
path order; a directory contributes the shards directly inside it. Lines (jsonl) are decoded one at a time and
parquet rows are read in record batches of `PARQUET_ROWS`, so no shard is ever held in memory whole; the
validation (precompute.inputs.readers) names the shard and its line or row. The corpus fingerprint that decides re-use
(fit_key, score chunks, the manifest's input hashes) is the file's sha256 for one file and, for shards, a sha256
over every shard's name and sha256.
"""
from __future__ import annotations

import glob
import gzip
import hashlib
import io
import os

from precompute.rundir.errors import UserInputError
from precompute.rundir import sha256_of_file

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
SHARD_SUFFIXES = JSONL_SUFFIXES + (".parquet",)
PARQUET_ROWS = 4096
GLOB_CHARACTERS = "*?["


def is_shard(path: str) -> bool:
    return path.endswith(SHARD_SUFFIXES)


def shard_paths(path: str) -> list[str]:
    """The corpus files named by `path`: itself, the shards in a directory, or the shards a glob matches."""
    kinds = ", ".join(SHARD_SUFFIXES)
    if os.path.isdir(path):
        found = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if is_shard(name) and os.path.isfile(os.path.join(path, name)))
        if not found:
            raise UserInputError(f"{path}: corpus directory has no shards ({kinds})")
        return found
    if any(character in path for character in GLOB_CHARACTERS) and not os.path.exists(path):
        found = sorted(name for name in glob.glob(path) if is_shard(name) and os.path.isfile(name))
        if not found:
            raise UserInputError(f"{path}: corpus pattern matches no shards ({kinds})")
        return found
    if not os.path.exists(path) and not is_shard(path):
        raise UserInputError(f"{path}: corpus not found (a file, a directory or a glob of shards)")
    if not is_shard(path):
        raise UserInputError(f"{path}: corpus must be a .jsonl, .jsonl.gz, .jsonl.zst or .parquet file, "
                             f"or a directory or glob of them")
    return [path]


def open_binary(path: str):
    """A binary stream of the file's decompressed bytes (iterating it yields lines)."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise UserInputError(f"{path}: reading .zst shards needs the Python package zstandard "
                                 f"(pip install zstandard)") from None
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def read_lines(path: str):
    """Yield (1-based line number, raw bytes) of a possibly compressed file; a broken archive is one line."""
    try:
        with open_binary(path) as handle:
            yield from enumerate(handle, start=1)
    except (OSError, EOFError) as error:          # gzip.BadGzipFile is an OSError; zstandard raises ZstdError
        raise UserInputError(f"{path}: cannot decompress ({error})") from None
    except Exception as error:
        if type(error).__module__.startswith("zstandard"):
            raise UserInputError(f"{path}: cannot decompress ({error})") from None
        raise


def parquet_rows(path: str, required: tuple[str, ...]):
    """Yield (1-based row, {column: value}) in record batches; missing required columns are one error."""
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a broken file
        raise UserInputError(f"{path}: not a readable parquet file ({str(error).splitlines()[0]})") from None
    names = source.schema_arrow.names
    for column in required:
        if column not in names:
            raise UserInputError(f"{path}: missing column '{column}'")
    row = 0
    for batch in source.iter_batches(batch_size=PARQUET_ROWS):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def corpus_sha256(path: str) -> str:
    """The corpus fingerprint: one file's sha256, or a sha256 over the shards' names and sha256s in order."""
    shards = shard_paths(path)
    if len(shards) == 1 and os.path.abspath(shards[0]) == os.path.abspath(path):
        return sha256_of_file(path)
    digest = hashlib.sha256()
    for shard in shards:
        digest.update(f"{os.path.basename(shard)}\0{sha256_of_file(shard)}\n".encode())
    return digest.hexdigest()
