"""`python -m precompute import-published FILE.json --out DIR`: the published scores of Ruis et al. (2024) as a
run directory; `python -m precompute export-published FILE.json --out DIR`: its documents and prompts as inputs
for a run of your own model (scripts/smollm2_example.sh).

The imported run is a normal run directory (docs/run-directory.md, docs/published-data.md) without a model:
scores.npy = `influences_dot`, normalized_scores.npy = `influences_cos`, layer_scores.npy = the total as one
"layer", doc_grad_norms.npy = `influences_dot / influences_cos` (one value per document), plus ranks.npy and
ranks_normalized.npy: each document's 0-based rank among all ~5M documents the paper scored. Nothing is written
unless the whole file is valid; the run is built in a hidden folder next to --out and moved into place complete.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time

import numpy as np
import pandas as pd

from precompute import rundir
from precompute.rundir import layout
from precompute.rundir.errors import UserInputError
from precompute.published.format import Published, document_ids, query_records, read_published

log = logging.getLogger("precompute.published.importer")
RANKS = layout.PUBLISHED_RANKS                         # int32 [Q, D]: 0-based rank by raw influence among the ~5M
RANKS_NORMALIZED = layout.PUBLISHED_RANKS_NORMALIZED   # int32 [Q, D]: the same by normalised influence
TOP_K = 100                                 # documents per side in top_docs (as `analyze`)
TOTAL_LAYER = "all layers (published total)"
NORM_TOLERANCE = 1e-6                       # max relative spread of dot / cos over one document's queries
LOCK_FILE = ".lock"                         # precompute.rundir's writer lock: not a run file
UMASK = os.umask(0)
os.umask(UMASK)
PAPER = "Ruis et al. (2024), Procedural Knowledge in Pretraining Drives Reasoning in Large Language Models"


def document_norms(published: Published) -> tuple[np.ndarray, str]:
    """The per-document divisor of the file's normalisation (dot / cos), and a note on how constant it is.

    NaN for every document when dot / cos is not one number per document (then it is not a norm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(published.cos != 0, published.dot / published.cos, np.nan)
    if np.isnan(ratio).all(axis=0).any():
        return np.full(published.n_documents, np.nan, np.float32), "dot / cos undefined for some document"
    norms = np.nanmedian(ratio, axis=0)
    spread = float(np.nanmax(np.abs(ratio - norms) / np.abs(norms)))
    if spread > NORM_TOLERANCE or (norms <= 0).any():
        return (np.full(published.n_documents, np.nan, np.float32),
                f"dot / cos differs across queries by up to {spread:.2g} (relative): not a per-document norm")
    return norms.astype(np.float32), f"dot / cos is one value per document (max relative spread {spread:.1g})"


def corpus_size(published: Published) -> int:
    """How many documents the paper ranked, at least: the largest 0-based rank + 1."""
    return int(max(published.ranks.max(), published.ranks_normed.max())) + 1


def approximate(count: int) -> str:
    """`~5M` for 4,999,999: the corpus size as the dashboard states it."""
    if count >= 1_000_000:
        return f"~{count / 1e6:.0f}M"
    if count >= 1_000:
        return f"~{count / 1e3:.0f}k"
    return f"{count:,}"


def sample_selection(published: Published, depth: int = 1000) -> str:
    """How the published documents relate to the whole ranking (they are not a random sample)."""
    size = corpus_size(published)
    top = int((published.ranks_normed.min(axis=0) < depth).sum())
    bottom = int((published.ranks_normed.max(axis=0) >= size - depth).sum())
    return (f"{top} of the {published.n_documents} documents are among the top {depth:,} of at least one query by "
            f"normalised influence and {bottom} among the bottom {depth:,}: a sample of extremes, not a random "
            "one, so shares and magnitudes computed on it describe the sample, not the corpus.")


def imported_manifest(published: Published, notes: list[str], norm_note: str, command: str) -> dict:
    """A manifest without a model (null settings) whose `imported` section says whose scores these are."""
    ids = document_ids(published.doc_ids)
    repeated = sorted({str(value) for value, doc in zip(published.doc_ids, ids) if doc != str(value)})
    size = corpus_size(published)
    imported = {
        "source": PAPER, "file": os.path.abspath(published.path), "sha256": published.sha256,
        "model": f"Command R {published.model}" if published.model in ("7B", "35B") else published.model,
        "corpus_size": size, "corpus_size_label": approximate(size), "rank_base": 0,
        "ranks": RANKS, "ranks_normalized": RANKS_NORMALIZED,
        "sample": f"{published.n_documents} documents the paper published out of the {approximate(size)} it "
                  f"scored; ranks are among all {approximate(size)}",
        "selection": sample_selection(published), "repeated_documents": repeated, "task_check": notes,
        "doc_grad_norms": norm_note,
    }
    return rundir.new_manifest(
        command, status="scoring", model=None, strategy="ekfac", fisher=None, damping=None, modules=None,
        layers=[TOTAL_LAYER], query_rank=None, max_length=None, batch_size=None, factor_docs=None, token_topk=0,
        device=None, dtype=None, seed=None, world_size=None, imported=imported,
        inputs={"published": {"path": os.path.abspath(published.path), "sha256": published.sha256}},
        counts={"queries": published.n_queries, "documents": published.n_documents, "layers": 1,
                "truncated_documents": 0})


def write_run_files(run: rundir.RunDir, published: Published, command: str) -> None:
    queries, notes = query_records(published)
    norms, norm_note = document_norms(published)
    run.write_manifest(imported_manifest(published, notes, norm_note, command))
    rundir.write_jsonl(run.file(rundir.QUERIES), queries)
    rundir.write_parquet(run.file(rundir.DOCUMENTS), pd.DataFrame({
        "id": document_ids(published.doc_ids), "source": published.sources, "text": published.texts,
        "n_tokens": np.full(published.n_documents, -1, np.int64),      # unknown: no Command R tokenizer here
        "truncated": np.zeros(published.n_documents, dtype=bool)}))
    scores = published.dot.astype(np.float32)
    rundir.write_npy(run.file(rundir.SCORES), scores)
    rundir.write_npy(run.file(rundir.LAYER_SCORES), scores[:, None, :])
    rundir.write_json(run.file(rundir.LAYERS), [TOTAL_LAYER])
    rundir.write_npy(run.file(rundir.NORMALIZED_SCORES), published.cos.astype(np.float32))
    rundir.write_npy(run.file(rundir.GRAD_NORMS), norms)
    rundir.write_npy(run.file(RANKS), published.ranks.astype(np.int32))
    rundir.write_npy(run.file(RANKS_NORMALIZED), published.ranks_normed.astype(np.int32))


def check_target(target: str, overwrite: bool) -> None:
    """Refuse to replace a complete run without --overwrite, or a folder that is not a run directory."""
    if not os.path.exists(target):
        return
    if not os.path.isdir(target):
        raise UserInputError(f"{target}: exists and is not a directory")
    existing = rundir.RunDir(target)
    if existing.exists():
        if existing.is_complete() and not overwrite:
            raise UserInputError(f"{target}: a complete run is already there; pass --overwrite to replace it")
    elif [name for name in os.listdir(target) if name != LOCK_FILE]:
        raise UserInputError(f"{target}: a non-empty folder that is not a run directory; choose another --out")


def move_into_place(staging: str, target: str) -> None:
    """Swap the finished run in for `target` (an old run there is moved aside first, then removed)."""
    if os.path.exists(target):
        trash = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
        os.replace(target, os.path.join(trash, "run"))
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, target)


def import_published(path: str, out: str, overwrite: bool = False, top_k: int = TOP_K,
                     progress: bool = True, command: str = "python -m precompute import-published") -> rundir.RunDir:
    """Validate the whole file, build the run (analysis included) in a hidden folder, move it to `out`."""
    started = time.perf_counter()
    published = read_published(path)
    target = os.path.abspath(out)
    check_target(target, overwrite)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.importing-", dir=parent)
    os.chmod(staging, 0o777 & ~UMASK)              # mkdtemp makes 0700; a run directory is shared like any folder
    try:
        run = rundir.RunDir(staging)
        write_run_files(run, published, command)
        run.update_manifest(status="analyzing")
        run.record_timing("import", time.perf_counter() - started)
        from precompute import analysis

        analysis_started = time.perf_counter()
        analysis.analyze_run(run, top_k=top_k, progress=progress)
        run.record_timing("analyze", time.perf_counter() - analysis_started)
        run.set_status("complete")
        move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("imported %s (%d queries x %d documents) into %s in %.1fs", path, published.n_queries,
             published.n_documents, out, time.perf_counter() - started)
    return rundir.RunDir(target)


# ---------------------------------------------------------------- inputs for a run of your own model

def long_documents(texts: list[str], min_chars: int) -> list[str]:
    """Consecutive texts joined (blank line between) until each piece has at least `min_chars` characters:
    real text long enough to benchmark max_length 1024-2048."""
    pieces, current = [], []
    for text in texts:
        current.append(text)
        if sum(len(t) for t in current) >= min_chars:
            pieces.append("\n\n".join(current))
            current = []
    return pieces


def export_inputs(path: str, out: str, per_task: int | None = None, long_chars: int = 6000) -> dict[str, str]:
    """corpus.jsonl (the documents, ids as in the import), prompts.jsonl (queries without a completion: the
    first `per_task` of each task; the paper's completion kept as `paper_completion`) and corpus_long.jsonl."""
    published = read_published(path)
    queries, _ = query_records(published)
    chosen, per = [], {}
    for query in queries:
        per[query["task"]] = per.get(query["task"], 0) + 1
        if per_task is None or per[query["task"]] <= per_task:
            chosen.append({key: value for key, value in query.items() if key not in ("completion", "nats")}
                          | {"paper_completion": query["completion"]})
    ids = document_ids(published.doc_ids)
    files = {name: os.path.join(out, name) for name in ("corpus.jsonl", "prompts.jsonl", "corpus_long.jsonl")}
    rundir.write_jsonl(files["corpus.jsonl"], [{"id": i, "source": s, "text": t}
                                               for i, s, t in zip(ids, published.sources, published.texts)])
    rundir.write_jsonl(files["prompts.jsonl"], chosen)
    rundir.write_jsonl(files["corpus_long.jsonl"], [{"id": f"long-{n:02d}", "source": "published-joined", "text": t}
                                                    for n, t in enumerate(long_documents(published.texts,
                                                                                         long_chars))])
    return files


# ---------------------------------------------------------------- command line (precompute/__main__.py)

def add_import_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="answer_and_slope_pretraining_data_prepared_{7B,35B}.json")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete run in --out")
    parser.add_argument("--top-k", type=int, default=TOP_K, help="documents per side in top_docs")


def add_export_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="answer_and_slope_pretraining_data_prepared_{7B,35B}.json")
    parser.add_argument("--out", required=True, help="folder for corpus.jsonl, prompts.jsonl, corpus_long.jsonl")
    parser.add_argument("--per-task", type=int, default=None, help="first N queries of each task (default all)")
    parser.add_argument("--long-chars", type=int, default=6000,
                        help="minimum characters of each corpus_long.jsonl document")


def run_import(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    if args.top_k < 1:
        raise UserInputError(f"--top-k must be a positive integer, got {args.top_k}")
    run = import_published(args.file, args.out, overwrite=args.overwrite, top_k=args.top_k, progress=progress,
                           command=command_line)
    print(f"published run written: {run.path}")


def run_export(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    if args.per_task is not None and args.per_task < 1:
        raise UserInputError(f"--per-task must be a positive integer, got {args.per_task}")
    files = export_inputs(args.file, args.out, args.per_task, args.long_chars)
    print("written: " + ", ".join(files.values()))
