"""`python -m precompute.bench_index --run DIR`: the index's accuracy / cost trade-off on a complete run.

Work on a copy of the run (the index is written into it). For each method and dim: build the index (the CLI, wall
and CPU seconds), then per query of the run: Pearson between the index's estimate and scores.npy's row, top-50
overlap (and bottom-50), bytes per document. Then: the projection pass against the scoring pass over the same
documents (in-process, alternating, fastest of --repeats), ask latency through the dashboard's worker client
(start, first question, warm questions), and faiss search time on a synthetic --synthetic-docs index. Prints a
markdown table and writes everything as JSON.
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

from precompute import index_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 50


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(run: str, method: str, dim: int, extra: list[str]) -> dict:
    wall, cpu = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, "-m", "precompute", "--quiet", "index", "--run", run, "--method", method,
                    "--dim", str(dim), "--overwrite", *extra], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": ROOT})
    return {"build_wall_s": time.perf_counter() - wall, "build_cpu_s": children_cpu() - cpu}


def overlap(a: np.ndarray, b: np.ndarray, k: int = K) -> float:
    return len(set(np.argsort(-a)[:k].tolist()) & set(np.argsort(-b)[:k].tolist())) / k


def accuracy(run: str) -> dict:
    scores = np.load(os.path.join(run, "scores.npy"))
    vectors = np.load(index_store.index_path(run, index_store.VECTORS), mmap_mode="r")
    estimate = np.load(index_store.index_path(run, index_store.QUERY_VECTORS)) @ np.asarray(vectors, np.float32).T
    pearson = [float(np.corrcoef(e, s)[0, 1]) for e, s in zip(estimate, scores)]
    manifest = index_store.read_manifest(run)
    return {"dim": manifest["dim"], "bytes_per_document": manifest["bytes_per_document"],
            "pearson_median": float(np.median(pearson)), "pearson_min": float(np.min(pearson)),
            "pearson_p10": float(np.percentile(pearson, 10)),
            "top50_median": float(np.median([overlap(e, s) for e, s in zip(estimate, scores)])),
            "bottom50_median": float(np.median([overlap(-e, -s) for e, s in zip(estimate, scores)])),
            "project_s": manifest["timings"]["project"]}


def pass_ratio(run: str, n_docs: int, repeats: int) -> dict:
    """Projection pass vs scoring pass (the run's queries, rank and damping) over the same document batches."""
    import pandas as pd
    from safetensors.torch import load_file

    from engine.batches import make_batches, tokenize_documents, tokenize_queries
    from engine.precondition import QueryArguments, precondition, query_gradients
    from engine.projection import Projection, project_documents
    from engine.scoring import score_documents
    from precompute.index import open_run_model

    context = open_run_model(run, device="cpu")
    session, settings = context.session, context.settings
    records = [json.loads(line) for line in open(os.path.join(run, "queries.jsonl"))]
    tokens = tokenize_queries(session.tokenizer, [r["prompt"] for r in records], [r["completion"] for r in records],
                              settings.max_length)
    grads, _ = query_gradients(session.model, session.tracked, tokens, settings.batch_size)
    pq = precondition(grads, context.factors, QueryArguments(settings.damping, settings.query_rank))
    manifest = index_store.read_manifest(run)
    projection = Projection.from_tensors(manifest["method"], manifest.get("seed") or 0, manifest["modules"],
                                         load_file(index_store.index_path(run, index_store.PROJECTION)))
    texts = pd.read_parquet(os.path.join(run, "documents.parquet"), columns=["text"])["text"]
    chosen = np.linspace(0, len(texts) - 1, n_docs).astype(int)
    docs = sorted(tokenize_documents(session.tokenizer, [texts[i] for i in chosen], settings.max_length),
                  key=lambda item: len(item.input_ids))
    batches = list(make_batches(docs, settings.batch_size, session.tokenizer.pad_token_id))
    passes = {"score": lambda: sum(1 for _ in score_documents(session.model, session.tracked, pq, batches, False)),
              "project": lambda: sum(1 for _ in project_documents(session.model, session.tracked, projection,
                                                                  batches, False))}
    best = {name: [float("inf"), float("inf")] for name in passes}
    for _ in range(repeats):
        for name, run_pass in passes.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run_pass()
            best[name] = [min(best[name][0], time.perf_counter() - wall), min(best[name][1], time.process_time() - cpu)]
    return {"docs": n_docs, "queries": len(records), "score_wall_s": best["score"][0], "score_cpu_s": best["score"][1],
            "project_wall_s": best["project"][0], "project_cpu_s": best["project"][1],
            "ratio_wall": best["project"][0] / best["score"][0], "ratio_cpu": best["project"][1] / best["score"][1]}


def ask_latency(run: str, n_questions: int) -> dict:
    """Through the dashboard's client: worker start, first question, then new (never asked) questions."""
    sys.path.insert(0, ROOT)
    from dashboard.ask_client import AskWorker

    records = [json.loads(line) for line in open(os.path.join(run, "queries.jsonl"))]
    worker = AskWorker(run)
    started = time.perf_counter()
    worker.start()
    ready = time.perf_counter() - started
    first = worker.ask(records[0]["prompt"], records[0]["completion"], top=K)
    first_s = time.perf_counter() - started
    warm, inside = [], []
    for record in records[1:1 + n_questions]:
        tick = time.perf_counter()
        result = worker.ask(record["prompt"], record["completion"], top=K)
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


def synthetic_search(n: int, dim: int, nlist: int, pq_m: int, nprobe: int, seed: int = 0) -> dict:
    """faiss IVF-PQ over n random vectors (built block by block, never all in memory) and flat search timed on a
    100k-row slice (flat at n is n/100k times that: it reads every vector)."""
    import faiss

    rng = np.random.default_rng(seed)
    block = 50_000
    started = time.perf_counter()
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    index.train(rng.standard_normal((max(40 * nlist, 20_000), dim), dtype=np.float32))
    for start in range(0, n, block):
        index.add(rng.standard_normal((min(block, n - start), dim), dtype=np.float32))
    built = time.perf_counter() - started
    index.nprobe = nprobe
    queries = rng.standard_normal((5, dim), dtype=np.float32)
    times = []
    for query in queries:
        tick = time.perf_counter()
        index.search(np.concatenate([query[None], -query[None]]), K)   # top and bottom, as ask does
        times.append(time.perf_counter() - tick)
    flat = faiss.IndexFlatIP(dim)
    flat.add(rng.standard_normal((100_000, dim), dtype=np.float32))
    flat_times = []
    for query in queries:
        tick = time.perf_counter()
        flat.search(np.concatenate([query[None], -query[None]]), K)
        flat_times.append(time.perf_counter() - tick)
    return {"docs": n, "dim": dim, "nlist": nlist, "pq_m": pq_m, "nprobe": nprobe, "build_s": built,
            "ivfpq_search_median_s": float(np.median(times)), "ivfpq_bytes_per_doc": pq_m,
            "flat_100k_search_median_s": float(np.median(flat_times)),
            "flat_extrapolated_s": float(np.median(flat_times)) * n / 100_000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m precompute.bench_index", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a COPY of a complete run (indexes are written into it)")
    parser.add_argument("--dims", default="2048,4096,8192,16384")
    parser.add_argument("--methods", default="eigen,gaussian")
    parser.add_argument("--default", default="eigen:8192", help="method:dim measured for speed and latency")
    parser.add_argument("--ratio-docs", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--synthetic-docs", type=int, default=1_000_000)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: table,ratio,ask,synthetic")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    skip, out = set(filter(None, args.skip.split(","))), {"run": args.run}
    if "table" not in skip:
        out["table"] = []
        for method in args.methods.split(","):
            for dim in map(int, args.dims.split(",")):
                row = {"method": method, "requested_dim": dim, **build(args.run, method, dim, [])}
                row.update(accuracy(args.run))
                out["table"].append(row)
                print(json.dumps(row), flush=True)
    method, dim = args.default.split(":")
    out["default"] = {"method": method, "dim": int(dim), **build(args.run, method, int(dim), [])}
    out["default"].update(accuracy(args.run))
    manifest = json.load(open(os.path.join(args.run, "manifest.json")))
    out["run_timings"] = manifest.get("timings", {})
    if "ratio" not in skip:
        out["pass_ratio"] = pass_ratio(args.run, args.ratio_docs, args.repeats)
        print(json.dumps(out["pass_ratio"]), flush=True)
    if "ask" not in skip:
        out["ask"] = ask_latency(args.run, args.questions)
        print(json.dumps(out["ask"]), flush=True)
    if "synthetic" not in skip:
        d = out["default"]["dim"]
        out["synthetic"] = synthetic_search(args.synthetic_docs, d, nlist=1024,
                                            pq_m=index_store.largest_divisor_at_most(d, 64), nprobe=32)
        print(json.dumps(out["synthetic"]), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
