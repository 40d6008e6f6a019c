"""One run directory on disk: its manifest (settings, status, counts, timings) and its life cycle."""
from __future__ import annotations

import datetime
import os
import platform
import shutil
import sys
from dataclasses import dataclass

from precompute.rundir.errors import UserInputError
from precompute.rundir import layout
from precompute.rundir.factor_files import missing_factor_files
from precompute.rundir.files import read_json, write_json


class RunDirError(UserInputError):
    """A user-facing problem with the run directory (exit code 2)."""


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "numpy", "pandas", "scipy", "pyarrow"):
        module = sys.modules.get(name)
        if module is None and name in ("numpy", "pandas", "scipy", "pyarrow"):
            module = __import__(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    return versions


def new_manifest(command: str, **fields) -> dict:
    manifest = {
        "format_version": layout.FORMAT_VERSION,
        "status": "fitting",
        "created": utc_now(),
        "command": command,
        "timings": {},
        "versions": package_versions(),
        "synthetic": False,
    }
    manifest.update(fields)
    return manifest


@dataclass
class RunDir:
    path: str

    def __post_init__(self):
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirError(f"{self.path}: --out must be a run directory, but a file of that name exists")

    def file(self, *names: str) -> str:
        return os.path.join(self.path, *names)

    @property
    def manifest_path(self) -> str:
        return self.file(layout.MANIFEST)

    def exists(self) -> bool:
        return os.path.exists(self.manifest_path)

    def manifest(self) -> dict:
        if not self.exists():
            raise RunDirError(f"{self.manifest_path}: no manifest; is this a run directory?")
        try:
            manifest = read_json(self.manifest_path)
        except (OSError, ValueError) as error:
            raise RunDirError(f"{self.manifest_path}: unreadable manifest ({error})") from None
        if not isinstance(manifest, dict):
            raise RunDirError(f"{self.manifest_path}: the manifest is not a JSON object")
        return manifest

    def status(self) -> str | None:
        return self.manifest().get("status") if self.exists() else None

    def is_complete(self) -> bool:
        return self.status() == layout.COMPLETE

    def write_manifest(self, manifest: dict) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.manifest_path, manifest)

    def update_manifest(self, **fields) -> dict:
        manifest = self.manifest() if self.exists() else {}
        manifest.update(fields)
        self.write_manifest(manifest)
        return manifest

    def set_status(self, status: str) -> dict:
        assert status in layout.STATUSES, status
        return self.update_manifest(status=status)

    def record_timing(self, stage: str, seconds: float) -> dict:
        manifest = self.manifest()
        manifest.setdefault("timings", {})[stage] = round(float(seconds), 3)
        self.write_manifest(manifest)
        return manifest

    def prepare_fresh(self, overwrite: bool) -> None:
        """Make the directory ready for a new run: refuses to replace a complete run unless `overwrite`.
        Everything but the writer's lock file is removed (the lock stays held by this process)."""
        if self.is_complete() and not overwrite:
            raise RunDirError(f"{self.path}: a complete run is already there; pass --overwrite to replace it")
        if overwrite and os.path.isdir(self.path):
            for name in os.listdir(self.path):
                if name == layout.LOCK:
                    continue
                target = self.file(name)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                else:
                    os.remove(target)
        os.makedirs(self.path, exist_ok=True)

    def missing_files(self, with_factors: bool = True) -> list[str]:
        missing = [name for name in layout.SCORE_FILES if not os.path.exists(self.file(name))]
        return missing + (missing_factor_files(self.file(layout.FACTORS_DIR)) if with_factors else [])
