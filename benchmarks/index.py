"""`python -m precompute bench-index --run DIR`: the index's accuracy / cost trade-off on a complete run.

Work on a copy of the run (the index is written into it). Parts:
- default: build the default index (wall and CPU seconds of the CLI), then for every query of the run: Pearson
  between the index's estimate and scores.npy's row over all documents, top-50 and bottom-50 overlap;
- ranks: one rank-8 build, then ranks 1..8 as the first r factors of each document (bytes per document each);
- ratio: the compression pass, and the scoring pass that also compresses (score --index), against the plain
  scoring pass over the same documents (in-process, alternating, fastest of --repeats), wall and CPU;
- ask: latency through the dashboard's worker client (start, first question, warm new questions, --generate);
- synthetic: faiss IVF-PQ over --synthetic-docs random keys plus scoring the candidates from their factors.
Prints one JSON line per result and writes everything to --json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from precompute.index import store as index_store
from precompute.rundir import layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 50
QUERY_BLOCK = 8


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(run: str, extra: list[str]) -> dict:
    wall, cpu = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, "-m", "precompute", "--quiet", "index", "--run", run, "--overwrite", *extra],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": ROOT})
    return {"build_wall_s": time.perf_counter() - wall, "build_cpu_s": children_cpu() - cpu}


def overlap(a: np.ndarray, b: np.ndarray, k: int = K) -> float:
    return len(set(np.argsort(-a)[:k].tolist()) & set(np.argsort(-b)[:k].tolist())) / k


def metrics(estimate: np.ndarray, scores: np.ndarray) -> dict:
    pearson = [float(np.corrcoef(e, s)[0, 1]) for e, s in zip(estimate, scores)]
    return {"queries": len(pearson), "pearson_median": float(np.median(pearson)),
            "pearson_p10": float(np.percentile(pearson, 10)), "pearson_min": float(np.min(pearson)),
            "top50_median": float(np.median([overlap(e, s) for e, s in zip(estimate, scores)])),
            "bottom50_median": float(np.median([overlap(-e, -s) for e, s in zip(estimate, scores)]))}


def all_estimates(search, context) -> np.ndarray:
    """[Q, N] the index's estimates for every query of the run."""
    from precompute.pipeline.run_model import run_queries

    n_queries = np.load(os.path.join(context.path, layout.SCORES), mmap_mode="r").shape[0]
    blocks = []
    for start in range(0, n_queries, QUERY_BLOCK):
        blocks.append(search.estimate(run_queries(context, list(range(start, min(start + QUERY_BLOCK, n_queries))))))
    return np.concatenate(blocks)


def truncated(search, rank: int):
    """The same index with only the first `rank` factors of every document and module (in memory)."""
    import copy

    import torch

    smaller = copy.copy(search)
    compressor = copy.copy(search.compressor)
    compressor.rank = rank
    parts = []
    for name, where in search.compressor.slices().items():
        d_out, d_in = search.compressor.shape(name)
        full = search.compressor.module_rank(name)
        block = search.vectors[:, where]
        keep = min(rank, full)
        parts += [block[:, :keep * d_out], block[:, full * d_out:full * d_out + keep * d_in]]
    smaller.vectors, smaller.compressor = np.concatenate(parts, axis=1), compressor
    smaller.cached = [smaller.prepared(torch.from_numpy(np.array(smaller.vectors, dtype=np.float32)))]
    return smaller


def accuracy(run: str, ranks: list[int] | None = None) -> dict:
    """Metrics of the index in `run` (and of its truncations to `ranks`) against scores.npy, all queries."""
    from precompute.index.search import IndexSearch
    from precompute.pipeline.run_model import open_run_model

    manifest = index_store.read_manifest(run)
    context = open_run_model(run, device="cpu")
    scores = np.load(os.path.join(run, layout.SCORES))
    search = IndexSearch(run, manifest)
    out = {"bytes_per_document": manifest["bytes_per_document"], "timings": manifest["timings"],
           **metrics(all_estimates(search, context), scores)}
    for rank in ranks or []:
        smaller = truncated(search, rank)
        out[f"rank_{rank}"] = {"bytes_per_document": smaller.vectors.shape[1] * smaller.vectors.itemsize,
                               **metrics(all_estimates(smaller, context), scores)}
        print(json.dumps({"rank": rank, **out[f"rank_{rank}"]}), flush=True)
    return out


def pass_ratio(run: str, n_docs: int, repeats: int) -> dict:
    """The index's compression pass, and the scoring pass with the index's compression in it (`score --index`),
    vs the plain scoring pass (the run's queries, rank and damping), same batches."""
    import pandas as pd

    from engine.batches import make_batches, tokenize_documents
    from engine.lowrank import compress_documents
    from engine.scoring import score_documents
    from precompute.index.search import load_compressors
    from precompute.pipeline.run_model import open_run_model, run_queries

    context = open_run_model(run, device="cpu")
    session, settings = context.session, context.settings
    pq = run_queries(context)
    compressors = [c for c in load_compressors(run, index_store.read_manifest(run)) if c is not None]
    texts = pd.read_parquet(os.path.join(run, layout.DOCUMENTS), columns=["text"])["text"]
    chosen = np.linspace(0, len(texts) - 1, n_docs).astype(int)
    docs = sorted(tokenize_documents(session.tokenizer, [texts[i] for i in chosen], settings.max_length),
                  key=lambda item: len(item.input_ids))
    batches = list(make_batches(docs, settings.batch_size, session.tokenizer.pad_token_id))
    passes = {"score": lambda: sum(1 for _ in score_documents(session.model, session.tracked, pq, batches, False)),
              "index": lambda: sum(1 for _ in compress_documents(session.model, session.tracked, compressors,
                                                                 batches, False)),
              "score_index": lambda: sum(1 for _ in score_documents(session.model, session.tracked, pq, batches, False,
                                                                    compressors=compressors))}
    best = {name: [float("inf"), float("inf")] for name in passes}
    for _ in range(repeats):
        for name, run_pass in passes.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run_pass()
            best[name] = [min(best[name][0], time.perf_counter() - wall), min(best[name][1], time.process_time() - cpu)]
    return {"docs": n_docs, "queries": pq.n_queries, "score_wall_s": best["score"][0], "score_cpu_s": best["score"][1],
            "index_wall_s": best["index"][0], "index_cpu_s": best["index"][1],
            "ratio_wall": best["index"][0] / best["score"][0], "ratio_cpu": best["index"][1] / best["score"][1],
            "score_index_cpu_s": best["score_index"][1],
            "score_index_ratio_cpu": best["score_index"][1] / best["score"][1]}


def ask_latency(run: str, n_questions: int) -> dict:
    """Through the dashboard's client: worker start, first question, then new (never asked) questions."""
    sys.path.insert(0, ROOT)
    from dashboard.ask_client import AskWorker

    records = [json.loads(line) for line in open(os.path.join(run, layout.QUERIES))]
    worker = AskWorker(run)
    started = time.perf_counter()
    worker.start()
    ready = time.perf_counter() - started
    first = worker.ask(records[0]["prompt"], records[0]["completion"], top=K)
    first_s = time.perf_counter() - started
    warm, inside = [], []
    for record in records[1:1 + n_questions]:
        tick = time.perf_counter()
        result = worker.ask(record["prompt"], record["completion"] + " ", top=K)   # never asked before
        warm.append(time.perf_counter() - tick)
        inside.append(result["seconds"])
    tick = time.perf_counter()
    generated = worker.ask(records[-1]["prompt"], generate=True, top=K)
    generate_s = time.perf_counter() - tick
    worker.close()
    return {"start_s": ready, "first_question_incl_start_s": first_s, "first_question_s": first["seconds"]["total"],
            "warm_median_s": float(np.median(warm)), "warm_max_s": float(np.max(warm)),
            "warm_search_median_s": float(np.median([s["search"] for s in inside])),
            "warm_token_scores_median_s": float(np.median([s["token_scores"] for s in inside])),
            "generate_question_s": generate_s, "generated_completion": generated["completion"]}


def synthetic_search(n: int, keys_dim: int, run: str, nlist: int = 256, nprobe: int = 16, seed: int = 0) -> dict:
    """faiss IVF-PQ over n random keys (built block by block), then the candidates scored from random factors
    shaped like the run's index (what `ask` does on a corpus too large to score every document)."""
    import faiss
    import torch

    from engine.lowrank import score_block
    from precompute.index.search import CANDIDATES, load_compressors

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    pq_m = index_store.largest_divisor_at_most(keys_dim, 64)
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(keys_dim), keys_dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    index.train(rng.standard_normal((max(40 * nlist, 20_000), keys_dim), dtype=np.float32))
    for start in range(0, n, 50_000):
        index.add(rng.standard_normal((min(50_000, n - start), keys_dim), dtype=np.float32))
    built = time.perf_counter() - started
    index.nprobe = nprobe
    compressor, _ = load_compressors(run, index_store.read_manifest(run))
    wanted = CANDIDATES * K
    candidates = torch.from_numpy(rng.standard_normal((2 * wanted, compressor.total_dim), dtype=np.float32))
    queries = {name: (torch.randn(1, compressor.shape(name)[0], 32), torch.randn(1, compressor.shape(name)[1], 32))
               for name in compressor.modules}
    search_s, score_s = [], []
    for _ in range(5):
        query = rng.standard_normal((1, keys_dim), dtype=np.float32)
        tick = time.perf_counter()
        index.search(np.concatenate([query, -query]), wanted)
        search_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        score_block(compressor, candidates, queries)
        score_s.append(time.perf_counter() - tick)
    return {"docs": n, "keys_dim": keys_dim, "nlist": nlist, "pq_m": pq_m, "nprobe": nprobe, "build_s": built,
            "ivfpq_search_median_s": float(np.median(search_s)), "candidates": 2 * wanted,
            "candidate_scoring_median_s": float(np.median(score_s)),
            "question_search_total_s": float(np.median(search_s) + np.median(score_s)),
            "ivfpq_bytes_per_doc": pq_m}


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a COPY of a complete run (indexes are written into it)")
    parser.add_argument("--parts", default="default,ranks,ratio,ask,synthetic")
    parser.add_argument("--no-build", action="store_true", help="measure the index already there (default, ranks)")
    parser.add_argument("--ratio-docs", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--synthetic-docs", type=int, default=1_000_000)
    parser.add_argument("--json", default=None)


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    parts, out = set(args.parts.split(",")), {"run": args.run}
    out["run_timings"] = json.load(open(os.path.join(args.run, layout.MANIFEST))).get("timings", {})
    if "default" in parts:
        out["default"] = {} if args.no_build else build(args.run, [])
        out["default"].update(accuracy(args.run))
        print(json.dumps(out["default"]), flush=True)
    if "ratio" in parts:
        out["pass_ratio"] = pass_ratio(args.run, args.ratio_docs, args.repeats)
        print(json.dumps(out["pass_ratio"]), flush=True)
    if "ask" in parts:
        out["ask"] = ask_latency(args.run, args.questions)
        print(json.dumps(out["ask"]), flush=True)
    if "synthetic" in parts:
        out["synthetic"] = synthetic_search(args.synthetic_docs, 1024, args.run)
        print(json.dumps(out["synthetic"]), flush=True)
    if "ranks" in parts:
        out["ranks"] = {} if args.no_build else {"rank_8_build": build(args.run, ["--rank", "8"])}
        out["ranks"].update(accuracy(args.run, ranks=[1, 2, 3, 4, 6, 8]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=2)
