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

from precompute import rundir

from precompute.index.options import IndexOptions
from precompute.pipeline import commands
from precompute.rundir.errors import UserInputError
from precompute.rundir import RunLock
from precompute.pipeline.settings import Settings

log = logging.getLogger("precompute.worlds.demo")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
DATA = os.path.join(ROOT, "data")
CORPUS = os.path.join(DATA, "corpus.jsonl")
QUERIES = os.path.join(DATA, "queries.jsonl")
MODEL = os.path.join(DATA, "model")
# the demo's settings where they differ from the defaults in precompute.pipeline.settings.Settings
DEMO_SETTINGS = dict(factor_docs=2000, batch_size=16, chunk_docs=512)
# the demo's counterfactual (PBRF + LDS); the responses are to ship in data/pbrf/ (made once by `python -m precompute
# counterfactual --run runs/demo --responses data/pbrf` with these options) and are re-used when their key matches,
# so the demo only computes the LDS tables. Not shipped yet: at the run's damping a converged solve needs thousands
# of Gauss-Newton products per set (measured: docs/counterfactual.md), hours per set on a 2-core CPU
PBRF_STORE = os.path.join(DATA, "pbrf")
DEMO_COUNTERFACTUAL = dict(sets=32, set_size=16, anchor_docs=48, max_iterations=4000, batch_size=16)


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
    """The identity comparison run (OUT-identity), the EK-FAC run with its Ask index (built in the scoring pass,
    default index options), its validation against identity and BM25, and the LDS leaderboard from the shipped PBRF
    responses; complete parts are re-used."""
    ensure_inputs()
    identity = f"{os.path.normpath(out)}-identity"
    with RunLock(identity, create=True):
        run_one(identity, overwrite, progress, strategy="identity", token_topk=0)
    run_one(out, overwrite, progress, index=IndexOptions().checked())   # the Ask page's index, built while scoring
    manifest = rundir.RunDir(out).manifest()
    if "validation" not in manifest:
        from precompute.validation.command import ValidateOptions, validate_run
        log.info("demo: tail-patch validation against identity and BM25")
        validate_run(out, ValidateOptions(strategy_runs=[identity]), progress)
    if "counterfactual" not in manifest:
        counterfactual(out, identity, progress)
    print(f"demo run complete: {out} (identity comparison: {identity})")


def ensure_inputs() -> None:
    ensure_corpus()
    if not os.path.isdir(MODEL):
        raise UserInputError(f"{MODEL}: demo model not found; train it with `python -m data.train_model`")
    if not os.path.exists(QUERIES):
        raise UserInputError(f"{QUERIES}: demo queries not found; make them with `python -m data.make_queries`")


def run_one(out: str, overwrite: bool, progress: bool, **changes) -> None:
    """One demo run (fit + score + token scores + analyze), unless it is complete already."""
    if rundir.RunDir(out).is_complete() and not overwrite:
        log.info("demo: re-using the complete run %s", out)
        return
    settings = demo_settings(out, overwrite).with_changes(validate=False, **changes)
    values = {**DEMO_SETTINGS, "validate": False, **changes}
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True or isinstance(v, IndexOptions) else f" {v}")
                     for k, v in values.items() if v is not False)
    command = f"python -m precompute run --model {settings.model} --corpus {settings.corpus} " \
              f"--queries {settings.queries} --out {out} {flags}"
    log.info("demo: %s", command)
    commands.run_command(settings, command_line=command, progress=progress)


def counterfactual(out: str, identity: str, progress: bool) -> None:
    """The LDS leaderboard from the shipped responses (data/pbrf); stale ones are reported, not recomputed here."""
    from precompute.counterfactual.command import CounterfactualOptions, counterfactual_run
    from precompute.counterfactual.store import ResponseStore

    if ResponseStore(PBRF_STORE).complete() is None:
        log.warning("demo: no LDS leaderboard: %s holds no complete PBRF responses (make them once with `python -m "
                    "precompute counterfactual --run %s --responses %s`, options in precompute/worlds/demo.py)",
                    PBRF_STORE, out, PBRF_STORE)
        return
    options = CounterfactualOptions(**DEMO_COUNTERFACTUAL, responses=PBRF_STORE, strategy_runs=[identity])
    try:
        counterfactual_run(out, options, progress)
    except UserInputError as error:
        log.warning("demo: no LDS leaderboard: %s", error)
