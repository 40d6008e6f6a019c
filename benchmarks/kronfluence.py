"""`python -m precompute bench-kronfluence`: our engine against kronfluence 1.0.1 at matched settings.

Two worlds, one comparison: by default a randomly initialised Llama (width 192, 4 layers), random documents of one
length and random queries (prompt masked); with `--model M` (an HF directory, a .gguf or 'smollm2') that model, the
first --docs texts of a corpus .jsonl (`--documents`, e.g. the published documents that `precompute
export-published` writes) cut at --max-length and sorted by length, and the queries of a queries .jsonl
(`--queries-file`: prompt and completion). Both sides: EK-FAC with the empirical Fisher on the same documents and
the same tracked MLP layers, damping 0.1 · mean(Λ) per module, every query's preconditioned gradient truncated to
rank R by an exact SVD (kronfluence: use_full_svd=True; its default is a randomised SVD), score = ⟨P(∇ completion
NLL), ∇ document NLL⟩, float32 with the eigendecompositions in float64, the same padded batches, queries
preconditioned --query-batch at a time. Our scoring pass reads the documents once for all queries; kronfluence
reads them once per query batch.

Each side runs in its own process on the same world. Prints per number of queries: fit time (once) and scoring
time (query gradients + preconditioning + the pass over the documents) in CPU seconds (the figure to use on a
shared machine) and wall seconds, the process's peak RSS while scoring, and the per-query Pearson correlation and
relative difference of the two score matrices. Then our fit in units of a plain forward+backward pass (forward,
summed NLL, backward with weight gradients: benchmarks.scoring_cost.baseline_pass) over the same fit documents, with the
eigendecomposition stated separately.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
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

from engine.batches import IGNORE, Tokenized, make_batches, tokenize_documents, tokenize_queries
from engine.errors import EngineInputError
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules, load_model
from engine.precondition import QueryArguments
from engine.query_stream import preconditioned_queries
from engine.scoring import score_documents
from benchmarks.scoring_cost import baseline_pass, read_jsonl
from precompute.pipeline.flag_values import positive_int
from precompute.rundir.errors import UserInputError


@dataclass
class World:
    model: torch.nn.Module
    modules: list[str]
    documents: list[Tokenized]
    queries: list[Tokenized]
    pad_id: int = 0

    def describe(self) -> dict:
        tracked = dict(self.model.named_modules())
        return {"params": sum(p.numel() for p in self.model.parameters()),
                "tracked_params": sum(p.numel() for name in self.modules for p in tracked[name].parameters()),
                "modules": len(self.modules), "documents": len(self.documents),
                "tokens": sum(len(d.input_ids) for d in self.documents),
                "truncated": sum(d.truncated for d in self.documents), "queries": len(self.queries)}


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


def text_world(model_spec: str, documents_path: str, queries_path: str, n_documents: int, max_length: int,
               n_queries: int) -> World:
    """A real model (engine.model.load_model: HF directory, .gguf or 'smollm2'), the first n_documents texts of a
    corpus .jsonl (field `text`) cut at max_length and sorted by length (as `precompute score` batches them), and
    the first n_queries (prompt, completion) of a queries .jsonl, prompt masked."""
    model, tokenizer = load_model(model_spec)
    texts = [row["text"] for row in read_jsonl(documents_path, n_documents)]
    rows = read_jsonl(queries_path, n_queries)
    if len(rows) < n_queries:
        raise EngineInputError(f"{queries_path}: {len(rows)} queries, fewer than the {n_queries} asked for")
    documents = sorted(tokenize_documents(tokenizer, texts, max_length), key=lambda d: len(d.input_ids))
    queries = tokenize_queries(tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows], max_length)
    return World(model, list(find_tracked_modules(model, "mlp")), documents, queries, int(tokenizer.pad_token_id))


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
def ours_fit(world: World, batch_size: int, stage_seconds: dict):
    tracked = {name: dict(world.model.named_modules())[name] for name in world.modules}
    batches = list(make_batches(world.documents, batch_size, world.pad_id))
    return tracked, fit_factors(world.model, tracked, batches, FactorArguments(strategy="ekfac", fisher="empirical"),
                                progress=False, stage_seconds=stage_seconds)


def forward_backward_seconds(world: World, batch_size: int) -> dict:
    """CPU and wall seconds and peak RSS of one plain forward+backward pass over the fit documents (after one
    warm-up batch), the unit the fit's cost is stated in."""
    batches = list(make_batches(world.documents, batch_size, world.pad_id))
    baseline_pass(world.model, batches[:1], "cpu")
    timings: dict = {}
    with measured(timings, "forward_backward"):
        baseline_pass(world.model, batches, "cpu")
    return timings["forward_backward"]


def ours_scores(world: World, tracked, factors, queries: list[Tokenized], rank: int, batch_size: int,
                query_batch: int) -> np.ndarray:
    pq, _ = preconditioned_queries(world.model, tracked, queries, factors, QueryArguments(damping="auto", rank=rank),
                                   query_batch)
    scores = np.zeros((len(queries), len(world.documents)), np.float64)
    for result in score_documents(world.model, tracked, pq, make_batches(world.documents, batch_size, world.pad_id),
                                  progress=False):
        scores[:, result.index] = result.scores.double().numpy()
    return scores


# ------------------------------------------------------------------------------------------------ kronfluence
def summed_nll(model, batch: dict) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["labels"].reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def kronfluence_rows(items: list[Tokenized], batch_size: int, pad_id: int) -> list[dict]:
    """One dict of tensors per item, right-padded as our batches are (each run of batch_size items to its longest):
    kronfluence's sequential loader stacks exactly these runs, so both sides see the same padded batches."""
    return [{"input_ids": batch.input_ids[i], "attention_mask": batch.attention_mask[i], "labels": batch.labels[i]}
            for batch in make_batches(items, batch_size, pad_id) for i in range(batch.input_ids.shape[0])]


class Kronfluence:
    """kronfluence 1.0.1 through its public API on a copy of the model (prepare_model wraps modules in place)."""

    def __init__(self, world: World, workdir: str, batch_size: int):
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
        self.documents = kronfluence_rows(world.documents, batch_size, world.pad_id)
        self.batch_size, self.pad_id = batch_size, world.pad_id

    def fit(self) -> None:
        from kronfluence.arguments import FactorArguments as KronfluenceFactors

        self.analyzer.fit_all_factors("factors", self.documents, per_device_batch_size=self.batch_size,
                                      factor_args=KronfluenceFactors(strategy="ekfac", use_empirical_fisher=True),
                                      overwrite_output_dir=True)

    def scores(self, queries: list[Tokenized], rank: int, query_batch: int) -> np.ndarray:
        from kronfluence.arguments import ScoreArguments

        arguments = ScoreArguments(damping_factor=None, query_gradient_low_rank=rank, use_full_svd=True)
        self.analyzer.compute_pairwise_scores("scores", "factors", kronfluence_rows(queries, query_batch, self.pad_id),
                                              self.documents, per_device_query_batch_size=query_batch,
                                              per_device_train_batch_size=self.batch_size, score_args=arguments,
                                              overwrite_output_dir=True)
        return self.analyzer.load_pairwise_scores("scores")["all_modules"].double().numpy()


# ------------------------------------------------------------------------------------------------ comparison
def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    return (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


SIDES = ("ours", "kronfluence")


def run_side(side: str, world: World, query_counts: list[int], rank: int, batch_size: int,
             query_batch: int) -> tuple[dict, dict[int, np.ndarray]]:
    """One side's fit (once) and scores for the first n queries, n in query_counts: (measurements, scores by n).
    Ours also measures a plain forward+backward pass over the fit documents and the fit's stages."""
    timings, scores = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-kronfluence-") as workdir:
        kronfluence = Kronfluence(world, workdir, batch_size) if side == "kronfluence" else None
        if kronfluence is None:
            timings["forward_backward"], timings["fit_stages"] = forward_backward_seconds(world, batch_size), {}
        with measured(timings, "fit"):
            if kronfluence is not None:
                kronfluence.fit()
            else:
                tracked, factors = ours_fit(world, batch_size, timings["fit_stages"])
        for n in query_counts:
            with measured(timings, f"score_{n}"):
                scores[n] = kronfluence.scores(world.queries[:n], rank, query_batch) if kronfluence \
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


def fit_cost(timings: dict) -> str:
    """Our fit in units of one plain forward+backward pass over the fit documents (CPU seconds), stage by stage,
    and without the eigendecomposition (a cost that does not grow with the documents)."""
    unit, stages = timings["forward_backward"]["cpu_s"], timings["fit_stages"]
    eigh = stages.get("eigendecomposition", {"cpu_s": 0.0})["cpu_s"]
    fit = timings["fit"]["cpu_s"]
    parts = ", ".join(f"{key.replace('_', ' ')} {value['cpu_s']:.1f} s = {value['cpu_s'] / unit:.2f}×"
                      for key, value in stages.items())
    return (f"fit in forward+backward units (CPU s; one plain forward+backward over the fit documents = "
            f"{unit:.1f} s, {timings['forward_backward']['wall_s']:.1f} s wall): fit {fit:.1f} s = "
            f"{fit / unit:.2f}×; without the eigendecomposition {(fit - eigh) / unit:.2f}× ({parts})")


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="random",
                        help="'random' (the seeded random Llama world), or an HF directory, .gguf or 'smollm2' with "
                             "--documents and --queries-file")
    parser.add_argument("--documents", default=None, help="with --model M: corpus .jsonl (field text)")
    parser.add_argument("--queries-file", default=None, help="with --model M: queries .jsonl (prompt, completion)")
    parser.add_argument("--max-length", type=positive_int, default=512, help="with --model M: tokens per document")
    parser.add_argument("--width", type=positive_int, default=192)
    parser.add_argument("--layers", type=positive_int, default=4)
    parser.add_argument("--intermediate", type=positive_int, default=512)
    parser.add_argument("--vocab", type=positive_int, default=1024)
    parser.add_argument("--docs", type=positive_int, default=1500, help="documents (with --model M: the first N)")
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


def build_world(args: argparse.Namespace) -> World:
    if args.model == "random":
        return random_world(args.width, args.layers, args.intermediate, args.vocab, args.docs, args.length,
                            max(args.queries), args.seed)
    return text_world(args.model, args.documents, args.queries_file, args.docs, args.max_length, max(args.queries))


def side_in_process(args: argparse.Namespace) -> None:
    world = build_world(args)
    timings, scores = run_side(args.side, world, sorted(args.queries), args.rank, args.batch_size, args.query_batch)
    np.savez(args.out, timings=json.dumps(timings), world=json.dumps(world.describe()),
             **{f"scores_{n}": value for n, value in scores.items()})


def side_in_subprocess(argv: list[str], side: str, directory: str) -> tuple[dict, dict[int, np.ndarray], dict]:
    """(measurements, scores by number of queries, the world's description) of one side run in its own process."""
    out = os.path.join(directory, f"{side}.npz")
    subprocess.run([sys.executable, "-m", "precompute", "bench-kronfluence", *argv, "--side", side, "--out", out],
                   check=True)
    with np.load(out) as saved:
        scores = {int(key.split("_")[1]): saved[key] for key in saved.files if key.startswith("scores_")}
        return json.loads(str(saved["timings"])), scores, json.loads(str(saved["world"]))


def world_line(args: argparse.Namespace, described: dict) -> str:
    what = (f"random Llama width {args.width}, {args.layers} layers" if args.model == "random" else
            f"{args.model}, the first {described['documents']} documents of {args.documents} at max length "
            f"{args.max_length} ({described['truncated']} truncated)")
    return (f"world: {what}; {described['params'] / 1e6:.2f}M params, {described['modules']} MLP modules tracked "
            f"({described['tracked_params'] / 1e6:.2f}M params); {described['documents']} documents, "
            f"{described['tokens']} tokens; {described['queries']} queries; rank {args.rank}, batch "
            f"{args.batch_size}, query batch {args.query_batch}; each side in its own process")


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    """The command table's entry: both sides, each in its own process (`--side`, internal), then the table."""
    if args.model != "random" and not (args.documents and args.queries_file):
        raise UserInputError(f"--model {args.model} needs --documents and --queries-file")
    warnings.filterwarnings("ignore", category=FutureWarning)      # kronfluence's GradScaler deprecation notes
    if args.side is not None:
        side_in_process(args)
        return
    import kronfluence

    words = shlex.split(command_line)
    argv = words[words.index("bench-kronfluence") + 1:]            # this command's own flags, for the sides
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, kronfluence {kronfluence.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-kronfluence-") as directory:
        try:
            ours, theirs = (side_in_subprocess(argv, side, directory) for side in SIDES)
        except subprocess.CalledProcessError as failed:
            raise UserInputError(f"a side's process exited with {failed.returncode} (its message is above)") from None
    print(world_line(args, ours[2]))
    print(table(compare(ours[:2], theirs[:2])))
    print(fit_cost(ours[0]))
    print(f"load after: {os.getloadavg()[0]:.1f}")
