"""Which files hold a run's factors, and their one fingerprint (torch-free).

factors/meta.json names its tensor files in "files" ({file name: [modules]}) when `fit --module-shards K` wrote
one file per module shard (layout.FACTOR_SHARD); without that key every module is in factors.safetensors.
"""
from __future__ import annotations

import hashlib
import os

from precompute.rundir import layout
from precompute.rundir.files import read_json, sha256_of_file


def factor_tensor_files(factors_dir: str) -> list[str]:
    """The tensor file names meta.json names (factors.safetensors for a run fitted as one shard)."""
    meta_path = os.path.join(factors_dir, layout.FACTOR_META)
    files = read_json(meta_path).get("files") if os.path.exists(meta_path) else None
    return list(files) if files else [layout.FACTOR_TENSORS]


def shard_file_names(shards: int) -> list[str]:
    """The tensor file of each of `shards` module shards (one shard: the single factors.safetensors)."""
    if shards == 1:
        return [layout.FACTOR_TENSORS]
    return [layout.FACTOR_SHARD.format(shard=shard, shards=shards) for shard in range(shards)]


def factors_sha256(factors_dir: str) -> str:
    """sha256 of factors.safetensors for a single-file run (as before shards existed); for sharded factors the
    sha256 of the lines `file sha256` of every tensor file in meta.json's order."""
    files = factor_tensor_files(factors_dir)
    if files == [layout.FACTOR_TENSORS]:
        return sha256_of_file(os.path.join(factors_dir, layout.FACTOR_TENSORS))
    lines = "".join(f"{name} {sha256_of_file(os.path.join(factors_dir, name))}\n" for name in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def missing_factor_files(factors_dir: str) -> list[str]:
    """meta.json and the tensor files it names that are not there (paths relative to the run directory)."""
    names = [layout.FACTOR_META] + factor_tensor_files(factors_dir)
    return [f"{layout.FACTORS_DIR}/{name}" for name in names if not os.path.exists(os.path.join(factors_dir, name))]


def remove_unlisted_shards(factors_dir: str) -> None:
    """Tensor files of an earlier fit that meta.json no longer names (another shard count) are removed."""
    listed = set(factor_tensor_files(factors_dir))
    for name in os.listdir(factors_dir):
        sharded = name.startswith("factors-") and name.endswith(".safetensors")
        if (sharded or name == layout.FACTOR_TENSORS) and name not in listed:
            os.remove(os.path.join(factors_dir, name))
