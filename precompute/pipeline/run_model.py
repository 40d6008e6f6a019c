"""A complete run's model, factors and documents, loaded to compute gradients for its index and new questions.

`open_run_model` reads the run's recorded settings (model, dtype, max_length, batch size, damping, query rank)
so that questions are tokenized and preconditioned exactly as the run's scoring did, and hashes the factors,
the model files and the document ids (an index built from other ones is stale).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pandas as pd

from precompute import rundir

from precompute.index import store as index_store
from precompute.rundir.errors import UserInputError
from precompute.rundir import layout
from precompute.rundir.factor_files import missing_factor_files
from precompute.pipeline.measurement import answers_of, measured_query_tokens
from precompute.pipeline.session import Session, open_session
from precompute.pipeline.settings import Settings

MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".json", ".model", ".txt")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


def resolve_model(spec: str) -> str:
    """The run's model as recorded, or relative to the repository when the recorded path is relative."""
    if os.path.exists(spec) or os.path.isabs(spec):
        return spec
    beside = os.path.join(ROOT, spec)
    return beside if os.path.exists(beside) else spec


def run_model_spec(manifest: dict, chosen: str | None = None) -> str:
    """The model to open for a run: `chosen` when given; else the recorded path if it exists here, else the
    absolute path its fit recorded (the run was made from another directory), else relative to the repository;
    an alias such as 'smollm2' as it is."""
    if chosen:
        return chosen
    recorded = str(manifest.get("model") or "")
    fitted = str((manifest.get("fit_key") or {}).get("model") or "")
    if recorded and not os.path.exists(recorded) and fitted and os.path.exists(fitted):
        return fitted
    return resolve_model(recorded) if recorded else fitted


def open_run_session(run_path: str, manifest: dict, modules: list[str], model: str | None = None,
                     device: str | None = None) -> tuple[Session, Settings]:
    """The one way a command opens a run's model: its recorded settings (Settings.from_manifest), the model
    resolved by run_model_spec, on `device` (default: as recorded), tracking exactly `modules` (the run's layers);
    a model that cannot be loaded is one UserInputError line naming the run."""
    from engine.errors import EngineInputError

    spec = run_model_spec(manifest, model)
    if not spec:
        raise UserInputError(f"{run_path}: the manifest names no model; pass --model")
    settings = Settings.from_manifest(manifest, model=spec, out=run_path,
                                      **({"device": device} if device else {}))
    try:
        return open_session(settings, modules=modules), settings
    except EngineInputError as error:
        raise UserInputError(f"{run_path}: cannot load the run's model: {error}") from None


def model_sha256(spec: str) -> str:
    """Hash of a model's files (weights, config, tokenizer): a directory, a .gguf file or the 'smollm2' alias."""
    if spec == "smollm2":
        from engine.model import smollm2_gguf_path
        spec = smollm2_gguf_path()
    if os.path.isfile(spec):
        return rundir.sha256_of_file(spec)
    if not os.path.isdir(spec):
        raise UserInputError(f"model not found: {spec}")
    digest = hashlib.sha256()
    for name in sorted(os.listdir(spec)):
        if name.endswith(MODEL_FILE_SUFFIXES) and os.path.isfile(os.path.join(spec, name)):
            digest.update(name.encode() + b"\0" + rundir.sha256_of_file(os.path.join(spec, name)).encode())
    return digest.hexdigest()


@dataclass
class RunModel:
    """What a command needs to compute gradients for a complete run: its settings, factors and model."""
    path: str
    manifest: dict
    settings: Settings
    factors: object
    session: Session
    hashes: dict          # factors_sha256, model_sha256, documents_sha256


def open_run_model(run_path: str, model: str | None = None, device: str = "auto",
                   documents_ids=None) -> RunModel:
    from engine.factors import Factors

    run = rundir.RunDir(run_path)
    manifest = run.manifest()
    if manifest.get("status") != layout.COMPLETE:
        raise rundir.RunDirError(f"{run_path}: the run is not complete (status {manifest.get('status')!r}); "
                                 "finish it before indexing or asking")
    if manifest.get("synthetic") or manifest.get("imported"):
        raise rundir.RunDirError(f"{run_path}: a synthetic or imported run has no model to compute gradients with")
    missing = missing_factor_files(run.file(layout.FACTORS_DIR))
    if missing:
        raise rundir.RunDirError(f"{run_path}: the run has no factors ({os.path.join(run_path, missing[0])})")
    factors = Factors.load(run.file(layout.FACTORS_DIR))
    session, settings = open_run_session(run_path, manifest, factors.modules, model, device)
    hashes = run_hashes(run_path, settings.model, documents_ids)
    return RunModel(run_path, manifest, settings, factors, session, hashes)


def run_hashes(run_path: str, model_spec: str, documents_ids=None) -> dict:
    """What an index records to be found stale later: the run's factors, the model files, the document ids."""
    factors_dir = rundir.RunDir(run_path).file(layout.FACTORS_DIR)
    hashes = {"factors_sha256": rundir.factors_sha256(factors_dir), "model_sha256": model_sha256(model_spec)}
    if documents_ids is not None:
        hashes["documents_sha256"] = index_store.documents_sha256(documents_ids)
    return hashes


def read_documents(run_path: str) -> pd.DataFrame:
    """id, source, text of the run's documents in score-column order."""
    path = os.path.join(run_path, layout.DOCUMENTS)
    if not os.path.exists(path):
        raise rundir.RunDirError(f"{run_path}: no {layout.DOCUMENTS}; is this a complete run directory?")
    return pd.read_parquet(path, columns=["id", "source", "text"])


def run_queries(context: RunModel, rows: list[int] | None = None):
    """The run's own queries (all, or those at `rows`), preconditioned exactly as in scoring."""
    from engine.query_stream import preconditioned_queries

    records = rundir.read_jsonl(os.path.join(context.path, layout.QUERIES))
    records = records if rows is None else [records[row] for row in rows]
    settings = context.settings
    tokens = measured_query_tokens(context.session.tokenizer, [r["prompt"] for r in records],
                                   [r["completion"] for r in records], answers_of(records), settings.max_length,
                                   settings.measurement)
    pq, _ = preconditioned_queries(context.session.model, context.session.tracked, tokens, context.factors,
                                   settings.query_arguments(), settings.batch_size, task=settings.task())
    return pq
