"""`python -m precompute bench`: time the engine's scoring pass against a plain forward+backward pass.

Both passes run over the same document batches. The baseline is what training would do per batch: forward,
summed NLL, backward with weight gradients. The scoring pass is score_documents for N preconditioned queries.
Passes alternate for --repeats rounds and the fastest round of each is reported (the machine may be shared).
"""
import argparse
import json
import os
import platform
import resource
import tempfile
import time

import torch

from engine.arguments import STRATEGIES
from engine.batches import make_batches, tokenize_documents, tokenize_queries
from engine.factors import FactorArguments, fit_factors
from engine.hooks import token_nll
from engine.model import find_tracked_modules, load_model, resolve_device
from engine.precondition import QueryArguments
from engine.query_stream import preconditioned_queries
from engine.scoring import low_rank_flops, materialise_flops, score_documents
from precompute.worlds.demo import CORPUS, QUERIES

DEFAULT_MODEL = os.path.join("data", "model")


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help="HF directory, .gguf or 'smollm2' (default data/model)")
    parser.add_argument("--queries", type=int, default=100, help="number of queries scored together")
    parser.add_argument("--docs", type=int, default=256, help="number of documents per pass")
    parser.add_argument("--rank", default="32", help="query rank, or 'full'")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--modules", default="mlp")
    parser.add_argument("--strategy", default="ekfac", choices=STRATEGIES)
    parser.add_argument("--corpus", default=os.path.relpath(CORPUS), help="documents (default: the demo's)")
    parser.add_argument("--queries-file", default=os.path.relpath(QUERIES), help="queries (default: the demo's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unsorted", action="store_true", help="batch in corpus order (default: sorted by length)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s in this dtype: also print the achieved fraction of it")


def read_jsonl(path: str, limit: int) -> list[dict]:
    rows = []
    with open(path) as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def open_model(spec: str, device: str, dtype: str):
    if spec == DEFAULT_MODEL and not os.path.exists(spec):
        from tests.tiny_models import make_tiny_llama

        path = os.path.join(tempfile.mkdtemp(prefix="bench-model-"), "model")
        print(f"note: {spec} does not exist yet; benchmarking a tiny random Llama instead ({path})")
        spec = make_tiny_llama(path, hidden=128, layers=4, intermediate=384, heads=4)
    return (*load_model(spec, device=device, dtype=dtype), spec)


def texts_and_queries(args, count_docs: int, count_queries: int) -> tuple[list[str], list[tuple[str, str]]]:
    if os.path.exists(args.corpus):
        texts = [row["text"] for row in read_jsonl(args.corpus, count_docs)]
    else:
        print(f"note: no corpus at {args.corpus}; using synthetic sentences")
        texts = [f"Document {i}: the value of item {i} is {i * 7 % 13}, and it was recorded in {1900 + i}."
                 for i in range(count_docs)]
    if os.path.exists(args.queries_file):
        rows = read_jsonl(args.queries_file, count_queries)
        pairs = [(row["prompt"], row["completion"]) for row in rows]
    else:
        pairs = []
    while len(pairs) < count_queries:  # repeat with a varied prompt so every query is distinct
        i = len(pairs)
        pairs.append((f"Q{i}: what is {i} + {i}?\nA:", f" {2 * i}."))
    return texts[:count_docs], pairs[:count_queries]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def baseline_pass(model, batches, device: str) -> None:
    """Plain training step cost: forward, summed NLL, backward with weight gradients."""
    for p in model.parameters():
        p.requires_grad_(True)
    for batch in batches:
        batch = batch.to(device)
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        token_nll(logits, batch.labels).sum().backward()
    model.zero_grad(set_to_none=True)


def scoring_pass(model, tracked, pq, batches) -> None:
    for _ in score_documents(model, tracked, pq, batches, progress=False):
        pass


def timed(fn, device: str) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, peak memory MiB). CPU seconds are robust to a shared machine."""
    reset_peak(device)
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, peak_memory_mb(device)


def describe_paths(pq, tracked, batches) -> str:
    """Which contraction the FLOP rule picks for a typical batch (first batch's shape)."""
    from engine.model import module_shape

    b, t = batches[0].input_ids.shape
    picks = {}
    for name in pq.modules:
        d_out, d_in = module_shape(tracked[name])
        r = pq.rank(name)
        low = r is not None and low_rank_flops(b, t, pq.n_queries, r, d_out, d_in) < materialise_flops(
            b, t, pq.n_queries, d_out, d_in)
        picks[name] = "low-rank" if low else "materialised"
    counts = {kind: sum(1 for v in picks.values() if v == kind) for kind in ("materialised", "low-rank")}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def run(args) -> None:
    device = resolve_device(args.device)
    rank = None if str(args.rank).lower() in ("full", "none") else int(args.rank)
    model, tokenizer, model_spec = open_model(args.model, device, args.dtype)
    tracked = find_tracked_modules(model, args.modules)
    texts, pairs = texts_and_queries(args, args.docs, args.queries)
    docs = tokenize_documents(tokenizer, texts, args.max_length)
    queries = tokenize_queries(tokenizer, [p for p, _ in pairs], [c for _, c in pairs], args.max_length)
    if not args.unsorted:  # as precompute does: batches of similar length, less padding
        docs = sorted(docs, key=lambda d: len(d.input_ids))
    batches = list(make_batches(docs, args.batch_size, tokenizer.pad_token_id))
    n_tokens = sum(len(d.input_ids) for d in docs)
    padded = sum(b.input_ids.numel() for b in batches)

    start = time.perf_counter()
    factors = fit_factors(model, tracked, batches, FactorArguments(strategy=args.strategy, fisher="empirical"),
                          progress=False)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    pq, _ = preconditioned_queries(model, tracked, queries, factors, QueryArguments(rank=rank), args.batch_size)
    query_s = time.perf_counter() - start

    warm = batches[:1]
    baseline_pass(model, warm, device)
    scoring_pass(model, tracked, pq, warm)
    base_runs, score_runs = [], []
    for _ in range(max(1, args.repeats)):
        base_runs.append(timed(lambda: baseline_pass(model, batches, device), device))
        score_runs.append(timed(lambda: scoring_pass(model, tracked, pq, batches), device))
    base_s, base_cpu, base_mem = min(base_runs)
    score_s, score_cpu, score_mem = min(score_runs)
    base_cpu, score_cpu = min(r[1] for r in base_runs), min(r[1] for r in score_runs)

    params = sum(p.numel() for p in model.parameters())
    tracked_params = sum(m.weight.numel() + (m.bias.numel() if m.bias is not None else 0) for m in tracked.values())
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""))
    print(f"model: {model_spec} ({params / 1e6:.2f}M params, {args.dtype}); tracked {len(tracked)} modules "
          f"({tracked_params / 1e6:.2f}M params, spec {args.modules!r}); strategy {args.strategy}")
    print(f"work: {len(docs)} docs, {n_tokens} tokens ({padded} padded), batch {args.batch_size}, "
          f"max_length {args.max_length}; {len(queries)} queries, rank {rank or 'full'}; "
          f"contractions: {describe_paths(pq, tracked, batches)}")
    print(f"setup: fit factors {fit_s:.2f} s, query gradients + preconditioning {query_s:.2f} s")
    memory_label = "peak GPU memory" if device.startswith("cuda") else "process peak RSS so far"
    for label, seconds, cpu, memory in (("forward+backward", base_s, base_cpu, base_mem),
                                        ("scoring", score_s, score_cpu, score_mem)):
        print(f"{label:>17}: {seconds:8.3f} s  {len(docs) / seconds:9.1f} docs/s  {n_tokens / seconds:10.0f} tokens/s"
              f"  (CPU {cpu:8.3f} s)  {memory_label} {memory:8.1f} MiB")
    print(f"ratio scoring / forward+backward: {score_s / base_s:.3f} wall, {score_cpu / base_cpu:.3f} CPU time  "
          f"(best of {len(base_runs)} alternating rounds; wall rounds: baseline "
          f"{', '.join(f'{r[0]:.3f}' for r in base_runs)}; scoring {', '.join(f'{r[0]:.3f}' for r in score_runs)})")
    print(throughput_line(params, n_tokens, base_s, score_s, args.peak_tflops))


def throughput_line(params: int, n_tokens: int, base_s: float, score_s: float, peak_tflops: float | None) -> str:
    """Achieved TFLOP/s, counting a forward+backward pass as 6 · parameters · tokens (attention excluded)."""
    work = 6.0 * params * n_tokens / 1e12
    line = (f"throughput (6 x params x tokens = {work:.3f} TFLOP per pass): forward+backward "
            f"{work / base_s:.3f} TFLOP/s, scoring {work / score_s:.3f} TFLOP/s of forward+backward work")
    if peak_tflops:
        line += f"; forward+backward at {work / base_s / peak_tflops:.1%} of the {peak_tflops:g} TFLOP/s peak"
    return line


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    run(args)
