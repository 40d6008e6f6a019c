"""`python -m precompute bench-kronfluence`: our engine against kronfluence 1.0.1 at matched settings.

A randomly initialised Llama (default: width 192, 4 layers), random documents of one length, random queries (prompt
masked). Both sides: EK-FAC with the empirical Fisher on the same documents and the same tracked MLP layers,
damping 0.1 · mean(Λ) per module, every query's preconditioned gradient truncated to rank R by an exact SVD
(kronfluence: use_full_svd=True; its default is a randomised SVD), score = ⟨P(∇ completion NLL), ∇ document NLL⟩,
float32 with the eigendecompositions in float64, the same batch sizes, queries preconditioned --query-batch at a
time. Our scoring pass reads the documents once for all queries; kronfluence reads them once per query batch.

Each side runs in its own process on the same seeded world. Prints per number of queries: fit time (once) and
scoring time (query gradients + preconditioning + the pass over the documents) in CPU seconds (the figure to use on
a shared machine) and wall seconds, the process's peak RSS while scoring, and the per-query Pearson correlation
and relative difference of the two score matrices.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.batches import IGNORE, Tokenized, make_batches
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules
from engine.precondition import QueryArguments
from engine.query_stream import preconditioned_queries
from engine.scoring import score_documents
from precompute.pipeline.flag_values import positive_int
from precompute.pipeline.threads import add_threads_flag, use_threads


@dataclass
class World:
    model: torch.nn.Module
    modules: list[str]
    documents: list[Tokenized]
    queries: list[Tokenized]


def random_world(width: int, layers: int, intermediate: int, vocab: int, n_documents: int, length: int,
                 n_queries: int, seed: int) -> World:
    """A seeded random LlamaForCausalLM (float32, pad id 0), documents of `length` random tokens, queries of a
    random prompt (8–24 tokens) and completion (2–8 tokens)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    heads = max(1, width // 48)
    config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max(length, 64),
                         tie_word_embeddings=False, pad_token_id=0)
    model = LlamaForCausalLM(config).float().eval()
    g = torch.Generator().manual_seed(seed + 1)
    documents = []
    for _ in range(n_documents):
        ids = torch.randint(1, vocab, (length,), generator=g).tolist()
        documents.append(Tokenized(ids, ids[1:] + [IGNORE], False))
    queries = []
    for _ in range(n_queries):
        prompt = torch.randint(1, vocab, (int(torch.randint(8, 25, (1,), generator=g)),), generator=g).tolist()
        completion = torch.randint(1, vocab, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g).tolist()
        labels = [IGNORE] * (len(prompt) - 1) + completion + [IGNORE]
        queries.append(Tokenized(prompt + completion, labels, False))
    return World(model, list(find_tracked_modules(model, "mlp")), documents, queries)


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def measured(into: dict, key: str, interval_s: float = 0.01):
    """into[key] = {"wall_s", "cpu_s" (this process, all threads), "peak_mib" (largest resident set, sampled)}."""
    peak, done = [resident_bytes()], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes())
            done.wait(interval_s)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        done.set()
        thread.join()
        into[key] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                     "peak_mib": max(peak[0], resident_bytes()) / 2**20}


# ------------------------------------------------------------------------------------------------------ ours
def ours_fit(world: World, batch_size: int):
    tracked = {name: dict(world.model.named_modules())[name] for name in world.modules}
    batches = list(make_batches(world.documents, batch_size, 0))
    return tracked, fit_factors(world.model, tracked, batches, FactorArguments(strategy="ekfac", fisher="empirical"),
                                progress=False)


def ours_scores(world: World, tracked, factors, queries: list[Tokenized], rank: int, batch_size: int,
                query_batch: int) -> np.ndarray:
    pq, _ = preconditioned_queries(world.model, tracked, queries, factors, QueryArguments(damping="auto", rank=rank),
                                   query_batch)
    scores = np.zeros((len(queries), len(world.documents)), np.float64)
    for result in score_documents(world.model, tracked, pq, make_batches(world.documents, batch_size, 0),
                                  progress=False):
        scores[:, result.index] = result.scores.double().numpy()
    return scores


# ------------------------------------------------------------------------------------------------ kronfluence
def summed_nll(model, batch: dict) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["labels"].reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def kronfluence_rows(items: list[Tokenized]) -> list[dict]:
    """One dict of equal-length tensors per item (right-padded to the longest), as kronfluence's loader stacks."""
    batch = next(make_batches(items, len(items), 0))
    return [{"input_ids": batch.input_ids[i], "attention_mask": batch.attention_mask[i], "labels": batch.labels[i]}
            for i in range(len(items))]


class Kronfluence:
    """kronfluence 1.0.1 through its public API on a copy of the model (prepare_model wraps modules in place)."""

    def __init__(self, world: World, workdir: str):
        from kronfluence.analyzer import Analyzer, prepare_model
        from kronfluence.task import Task

        modules = list(world.modules)

        class SummedNLL(Task):
            def compute_train_loss(self, batch, model, sample=False):
                if sample:
                    raise NotImplementedError("the benchmark uses the empirical Fisher")
                return summed_nll(model, batch)

            def compute_measurement(self, batch, model):
                return summed_nll(model, batch)

            def get_influence_tracked_modules(self):
                return modules

            def get_attention_mask(self, batch):
                return batch["attention_mask"]

        self.task = SummedNLL()
        model = prepare_model(copy.deepcopy(world.model), self.task)
        self.analyzer = Analyzer("bench", model, self.task, cpu=True, disable_tqdm=True, output_dir=workdir)
        self.documents = kronfluence_rows(world.documents)

    def fit(self, batch_size: int) -> None:
        from kronfluence.arguments import FactorArguments as KronfluenceFactors

        self.analyzer.fit_all_factors("factors", self.documents, per_device_batch_size=batch_size,
                                      factor_args=KronfluenceFactors(strategy="ekfac", use_empirical_fisher=True),
                                      overwrite_output_dir=True)

    def scores(self, queries: list[Tokenized], rank: int, batch_size: int, query_batch: int) -> np.ndarray:
        from kronfluence.arguments import ScoreArguments

        arguments = ScoreArguments(damping_factor=None, query_gradient_low_rank=rank, use_full_svd=True)
        self.analyzer.compute_pairwise_scores("scores", "factors", kronfluence_rows(queries), self.documents,
                                              per_device_query_batch_size=query_batch,
                                              per_device_train_batch_size=batch_size, score_args=arguments,
                                              overwrite_output_dir=True)
        return self.analyzer.load_pairwise_scores("scores")["all_modules"].double().numpy()


# ------------------------------------------------------------------------------------------------ comparison
def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    return (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


SIDES = ("ours", "kronfluence")


def run_side(side: str, world: World, query_counts: list[int], rank: int, batch_size: int,
             query_batch: int) -> tuple[dict, dict[int, np.ndarray]]:
    """One side's fit (once) and scores for the first n queries, n in query_counts: (measurements, scores by n)."""
    timings, scores = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-kronfluence-") as workdir:
        kronfluence = Kronfluence(world, workdir) if side == "kronfluence" else None
        with measured(timings, "fit"):
            if kronfluence is not None:
                kronfluence.fit(batch_size)
            else:
                tracked, factors = ours_fit(world, batch_size)
        for n in query_counts:
            with measured(timings, f"score_{n}"):
                scores[n] = kronfluence.scores(world.queries[:n], rank, batch_size, query_batch) if kronfluence \
                    else ours_scores(world, tracked, factors, world.queries[:n], rank, batch_size, query_batch)
    return timings, scores


def compare(ours: tuple[dict, dict], theirs: tuple[dict, dict]) -> list[dict]:
    """One row per number of queries: both sides' measurements and the agreement of their scores."""
    rows = []
    for n in sorted(ours[1]):
        pearson = pearson_rows(ours[1][n], theirs[1][n])
        rows.append({"queries": n, "fit": (ours[0]["fit"], theirs[0]["fit"]),
                     "score": (ours[0][f"score_{n}"], theirs[0][f"score_{n}"]),
                     "pearson_min": float(pearson.min()), "pearson_median": float(np.median(pearson)),
                     "rel_err": float(np.linalg.norm(ours[1][n] - theirs[1][n]) / np.linalg.norm(theirs[1][n]))})
    return rows


def table(rows: list[dict]) -> str:
    pair = lambda measured_pair, key, spec: " / ".join(format(m[key], spec) for m in measured_pair)  # noqa: E731
    lines = ["| queries | fit CPU s (wall) ours / kronfluence | scoring CPU s ours / kronfluence | scoring wall s | "
             "CPU speed-up fit, scoring | peak RSS MiB scoring | per-query Pearson min (median) | rel. error |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fit, score = r["fit"], r["score"]
        lines.append(f"| {r['queries']} | {pair(fit, 'cpu_s', '.1f')} ({pair(fit, 'wall_s', '.1f')}) | "
                     f"{pair(score, 'cpu_s', '.2f')} | {pair(score, 'wall_s', '.2f')} | "
                     f"{fit[1]['cpu_s'] / fit[0]['cpu_s']:.2f}×, {score[1]['cpu_s'] / score[0]['cpu_s']:.2f}× | "
                     f"{pair(score, 'peak_mib', '.0f')} | {r['pearson_min']:.6f} ({r['pearson_median']:.6f}) | "
                     f"{r['rel_err']:.1e} |")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m precompute bench-kronfluence", description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=positive_int, default=192)
    parser.add_argument("--layers", type=positive_int, default=4)
    parser.add_argument("--intermediate", type=positive_int, default=512)
    parser.add_argument("--vocab", type=positive_int, default=1024)
    parser.add_argument("--docs", type=positive_int, default=1500)
    parser.add_argument("--length", type=positive_int, default=128, help="tokens per document")
    parser.add_argument("--queries", type=positive_int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--rank", type=positive_int, default=32, help="query rank")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="documents per batch (both sides)")
    parser.add_argument("--query-batch", type=positive_int, default=100, help="queries preconditioned at a time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", choices=SIDES, default=None,
                        help="(internal) run only this side and write its results to --out; by default each side "
                             "runs in its own process, so that their memory figures do not mix")
    parser.add_argument("--out", default=None, help="with --side: the .npz to write")
    add_threads_flag(parser)
    return parser.parse_args(argv)


def side_in_process(args: argparse.Namespace) -> None:
    world = random_world(args.width, args.layers, args.intermediate, args.vocab, args.docs, args.length,
                         max(args.queries), args.seed)
    timings, scores = run_side(args.side, world, sorted(args.queries), args.rank, args.batch_size, args.query_batch)
    np.savez(args.out, timings=json.dumps(timings), **{f"scores_{n}": value for n, value in scores.items()})


def side_in_subprocess(argv: list[str], side: str, directory: str) -> tuple[dict, dict[int, np.ndarray]]:
    out = os.path.join(directory, f"{side}.npz")
    subprocess.run([sys.executable, "-m", "benchmarks.kronfluence", *argv, "--side", side, "--out", out],
                   check=True)
    with np.load(out) as saved:
        return json.loads(str(saved["timings"])), {int(key.split("_")[1]): saved[key] for key in saved.files
                                                    if key.startswith("scores_")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    use_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)      # kronfluence's GradScaler deprecation notes
    if args.side is not None:
        side_in_process(args)
        return 0
    import kronfluence

    params = sum(p.numel() for p in random_world(args.width, args.layers, args.intermediate, args.vocab, 1, 2, 1,
                                                 args.seed).model.parameters())
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, kronfluence {kronfluence.__version__}")
    print(f"world: random Llama width {args.width}, {args.layers} layers ({params / 1e6:.2f}M params, MLP modules "
          f"tracked), {args.docs} documents x {args.length} tokens; rank {args.rank}, batch {args.batch_size}, "
          f"query batch {args.query_batch}; each side in its own process")
    with tempfile.TemporaryDirectory(prefix="bench-kronfluence-") as directory:
        ours, theirs = (side_in_subprocess(argv, side, directory) for side in SIDES)
    print(table(compare(ours, theirs)))
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
