"""`python -m precompute demo [--out runs/demo]`: the demo world (data/) end to end.

Generates data/corpus.jsonl with the data package when it is missing, then runs fit + score + analyze with
settings sized for a laptop (2 CPU cores, under 10 minutes). A complete run is re-used as it is; an
interrupted one is continued.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

from precompute import commands, rundir
from precompute.errors import UserInputError
from precompute.settings import Settings

log = logging.getLogger("precompute.demo")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")
CORPUS = os.path.join(DATA, "corpus.jsonl")
QUERIES = os.path.join(DATA, "queries.jsonl")
MODEL = os.path.join(DATA, "model")
# the demo's settings where they differ from the defaults in precompute.settings.Settings
DEMO_SETTINGS = dict(factor_docs=2000, batch_size=16, chunk_docs=512, validate=True)


def ensure_corpus() -> None:
    if os.path.exists(CORPUS) and os.path.getsize(CORPUS) > 0:
        return
    log.info("generating the demo corpus: python -m data.generate_corpus")
    result = subprocess.run([sys.executable, "-m", "data.generate_corpus"], cwd=ROOT)
    if result.returncode != 0 or not os.path.exists(CORPUS):
        raise UserInputError(f"{CORPUS}: could not generate the demo corpus (python -m data.generate_corpus failed)")


def demo_settings(out: str, overwrite: bool) -> Settings:
    return Settings(model=os.path.relpath(MODEL, os.getcwd()), corpus=os.path.relpath(CORPUS, os.getcwd()),
                    queries=os.path.relpath(QUERIES, os.getcwd()), out=out, overwrite=overwrite,
                    **DEMO_SETTINGS).checked()


def run_demo(out: str, overwrite: bool = False, progress: bool = True) -> None:
    run = rundir.RunDir(out)
    if run.is_complete() and not overwrite:
        if "validation" not in run.manifest():
            from precompute.validate import ValidateOptions, validate_run
            log.info("demo: the complete run has no validation yet; validating it")
            validate_run(out, ValidateOptions(), progress)
        print(f"demo run already complete (re-used): {out}")
        return
    ensure_corpus()
    if not os.path.isdir(MODEL):
        raise UserInputError(f"{MODEL}: demo model not found; train it with `python -m data.train_model`")
    if not os.path.exists(QUERIES):
        raise UserInputError(f"{QUERIES}: demo queries not found; make them with `python -m data.make_queries`")
    settings = demo_settings(out, overwrite)
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in DEMO_SETTINGS.items())
    command = f"python -m precompute run --model {settings.model} --corpus {settings.corpus} " \
              f"--queries {settings.queries} --out {out} {flags}"
    log.info("demo: %s", command)
    commands.run_command(settings, command_line=command, progress=progress)
    print(f"demo run complete: {out}")
