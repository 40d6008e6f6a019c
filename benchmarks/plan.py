"""Plan vs measured peak memory: `python -m precompute bench-plan --config demo|wide|smollm2 [--device cuda]`.

Each configuration runs `python -m precompute plan --json` and then the same `run` in a fresh child process whose
peak resident memory (ru_maxrss; with --device cuda torch's peak reserved CUDA memory) is read back; prints one JSON line with both and the relative error. One
configuration per call, so each measurement is its own process (run them one at a time on a shared machine).
- demo: the demo model on the first 300 demo documents, 20 demo queries, default settings;
- wide: a randomly initialised Llama of hidden 2048, MLP 3072, 2 layers (77 M parameters; the demo tokenizer) on
  120 demo documents, 8 queries, batch 4, max length 128;
- smollm2: SmolLM2-135M (GGUF alias) tracking the MLPs of its first 3 layers, 16 documents, 4 queries, batch 4,
  max length 128.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from precompute.worlds.demo import CORPUS, QUERIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")
CHILD = ("import resource, runpy, sys; sys.argv = ['precompute'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('precompute', run_name='__main__')\nexcept SystemExit as e:\n"
         "    code = e.code\nelse:\n    code = 0\n"
         "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
         "torch = sys.modules.get('torch')\n"
         "if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():\n"
         "    print('PEAK_CUDA_BYTES', torch.cuda.max_memory_reserved(), file=sys.stderr)\n"
         "sys.exit(code or 0)\n")


def head_lines(source: str, target: str, n: int) -> str:
    with open(source, encoding="utf-8") as handle, open(target, "w", encoding="utf-8") as out:
        for _, line in zip(range(n), handle):
            out.write(line)
    return target


def wide_model(path: str) -> str:
    """A random Llama at hidden 2048 / MLP 3072 / 2 layers with the demo model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if os.path.exists(os.path.join(path, "config.json")):
        return path
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(DATA, "model"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=3072, num_hidden_layers=2,
                         num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def configuration(name: str, work: str) -> tuple[str, list[str]]:
    """(model, the flags plan and run share) of one named configuration."""
    corpus, queries = CORPUS, QUERIES
    if name == "demo":
        return os.path.join(DATA, "model"), [
            "--corpus", head_lines(corpus, os.path.join(work, "corpus-sample.jsonl"), 300),
            "--queries", head_lines(queries, os.path.join(work, "queries-sample.jsonl"), 20)]
    if name == "wide":
        return wide_model(os.path.join(work, "wide-model")), [
            "--corpus", head_lines(corpus, os.path.join(work, "corpus-sample.jsonl"), 120),
            "--queries", head_lines(queries, os.path.join(work, "queries-sample.jsonl"), 8),
            "--batch-size", "4", "--max-length", "128"]
    return "smollm2", [
        "--corpus", head_lines(corpus, os.path.join(work, "corpus-sample.jsonl"), 16),
        "--queries", head_lines(queries, os.path.join(work, "queries-sample.jsonl"), 4),
        "--batch-size", "4", "--max-length", "128", "--modules", r"layers\.[0-2]\.mlp"]


def child(arguments: list[str]) -> tuple[int, float, int | None]:
    """(peak RSS bytes, wall seconds, peak CUDA bytes reserved or None) of `python -m precompute ARGUMENTS` in a
    fresh process."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, *arguments], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    lines = result.stderr.strip().splitlines()
    peak = next(int(line.split()[1]) for line in reversed(lines) if line.startswith("PEAK_RSS_KIB"))
    if result.returncode:
        raise SystemExit(f"exit {result.returncode}: {' | '.join(lines[-5:])}")
    cuda = next((int(line.split()[1]) for line in lines if line.startswith("PEAK_CUDA_BYTES")), None)
    return peak * 1024, time.perf_counter() - started, cuda


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, choices=["demo", "wide", "smollm2"])
    parser.add_argument("--out", default=os.path.join("runs", "bench-plan"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: compare the plan's GPU peak with torch's peak reserved CUDA memory")


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    work = os.path.abspath(os.path.join(args.out, args.config))
    os.makedirs(work, exist_ok=True)
    model, flags = configuration(args.config, work)
    flags += ["--device", args.device]
    plan_file = os.path.join(work, "plan.json")
    child(["--quiet", "plan", "--model", model, *flags, "--json", plan_file])
    with open(plan_file) as handle:
        plan = json.load(handle)
    run_dir = os.path.join(work, "run")
    shutil.rmtree(run_dir, ignore_errors=True)
    rss, wall, cuda = child(["--quiet", "run", "--model", model, *flags, "--out", run_dir])
    measured = cuda if args.device == "cuda" else rss
    if measured is None:
        raise SystemExit("the run did not initialise CUDA: no GPU peak to compare")
    predicted = plan["peak_bytes_per_rank"]
    print(json.dumps({"config": args.config, "device": args.device, "predicted_peak_bytes": predicted,
                      "measured_peak_bytes": measured, "relative_error": (predicted - measured) / measured,
                      "predicted_peak_stage": plan["peak_stage"], "measured_peak_rss_bytes": rss,
                      "predicted_host_peak_bytes": plan["peak_host_bytes_per_rank"], "run_wall_s": round(wall, 1),
                      "load": os.getloadavg()[0]}))
