"""`python -m precompute plan`: the memory and work plan from a model config and the run's sizes, and the same
plan logged (and enforced with --memory-per-rank) at the start of fit, score and run.

Sizes come from flags (--docs N --tokens-per-doc T) or from a corpus (read and measured; tokens per character
from the model's tokenizer on a sample when the model is a directory with one, else CHARS_PER_TOKEN).
"""
from __future__ import annotations

import argparse
import logging
import os

from precompute.plan import memory as pm
from precompute.rundir.errors import UserInputError
from precompute.plan.work import Plan, format_bytes, make_plan
from precompute.plan.model_shape import model_shape
from precompute.pipeline.flag_values import parse_bytes, parse_query_rank, positive_int
from precompute.pipeline.settings import Settings

log = logging.getLogger("precompute")
CHARS_PER_TOKEN = 4.0            # assumption when no tokenizer is at hand (English text, BPE vocabularies)
TOKENIZER_SAMPLE = 256
STAGES_OF = {"fit": ("load", "fit"),
             "score": ("load", "query gradients", "query preconditioning", "scoring", "writing results (rank 0)"),
             "run": None}


def optional_bytes(value: str | None, flag: str) -> int | None:
    return None if value is None else parse_bytes(value, flag)


def chars_per_token(model: str, texts: list[str]) -> float:
    """Characters per token of the model's tokenizer on up to TOKENIZER_SAMPLE texts spread over the corpus."""
    if not os.path.isdir(model) or not texts:
        return CHARS_PER_TOKEN
    try:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(model)
    except Exception:  # a config-only directory has no tokenizer: fall back to the stated assumption
        return CHARS_PER_TOKEN
    step = max(1, len(texts) // TOKENIZER_SAMPLE)
    sample = texts[::step][:TOKENIZER_SAMPLE]
    tokens = sum(len(tokenizer(text, add_special_tokens=True)["input_ids"]) for text in sample)
    return sum(len(text) for text in sample) / max(tokens, 1)


def corpus_sizes(model: str, texts: list[str], max_length: int) -> dict:
    ratio = chars_per_token(model, texts)
    lengths = [min(max_length, max(1, round(len(text) / ratio))) for text in texts]
    return {"n_docs": len(texts), "tokens_per_doc": sum(lengths) / max(len(lengths), 1),
            "batch_tokens": max(lengths, default=1), "text_bytes": sum(len(text.encode("utf-8")) for text in texts),
            "chars_per_token": ratio}


def query_count(value: str) -> tuple[int, int | None]:
    """(number of queries, their longest prompt + completion in characters or None) from a count or a file."""
    if value.isdigit():
        return int(value), None
    from precompute.inputs.readers import read_queries
    queries = read_queries(value)
    return len(queries), max(len(r["prompt"]) + len(r["completion"]) for r in queries.records)


def workload_from_args(args) -> tuple[pm.Workload, dict]:
    if args.corpus:
        from precompute.inputs.readers import read_corpus
        sizes = corpus_sizes(args.model, read_corpus(args.corpus).texts, args.max_length)
    elif args.docs and args.tokens_per_doc:
        tokens = min(args.tokens_per_doc, args.max_length)
        sizes = {"n_docs": args.docs, "tokens_per_doc": tokens, "batch_tokens": tokens,
                 "text_bytes": int(args.docs * tokens * CHARS_PER_TOKEN), "chars_per_token": CHARS_PER_TOKEN}
    else:
        raise UserInputError("plan: give --corpus PATH, or --docs N and --tokens-per-doc T")
    n_queries, longest = query_count(args.queries)
    query_tokens = min(args.max_length, 128 if longest is None else max(2, round(longest / sizes["chars_per_token"])))
    w = pm.Workload(n_docs=sizes["n_docs"], tokens_per_doc=sizes["tokens_per_doc"], batch_tokens=sizes["batch_tokens"],
                    text_bytes=sizes["text_bytes"], n_queries=n_queries, query_tokens=query_tokens,
                    factor_docs=min(args.factor_docs or sizes["n_docs"], sizes["n_docs"]), batch_size=args.batch_size,
                    query_rank=parse_query_rank(args.query_rank), strategy=args.strategy, dtype=args.dtype,
                    factor_dtype=args.factor_dtype, token_topk=args.token_topk, device=args.device, nproc=args.nproc,
                    module_shards=args.module_shards,
                    memory_budget=optional_bytes(args.memory_budget, "--memory-budget"))
    return w, sizes


def plan_lines(plan: Plan) -> list[str]:
    """The plan as a text table: memory per stage and part, disk, work, settings, verdict."""
    lines = [f"model: {plan.summary}",
             f"settings: batch size {plan.settings['batch_size']} (query batch {plan.settings['query_batch']}), "
             f"{plan.settings['module_shards']} module shard(s) ({plan.settings['modules_per_rank']} modules per "
             f"rank), contraction {plan.settings['contraction']['low-rank']} low-rank / "
             f"{plan.settings['contraction']['materialised']} materialised"]
    for stage, where in plan.stages.items():
        for side in ("device", "host", "mapped"):
            if where[side]:
                lines.append(f"  {stage + ' [' + side + ']':<58} {format_bytes(sum(where[side].values())):>12}")
                lines += [f"      {part:<54} {format_bytes(value):>12}" for part, value in where[side].items()]
    lines.append(f"peak per rank: {format_bytes(plan.peak_bytes_per_rank)} ({plan.peak_stage}); host peak "
                 f"{format_bytes(plan.peak_host_bytes_per_rank)}")
    lines.append("disk: " + "; ".join(f"{name} {format_bytes(value)}" for name, value in plan.disk.items() if value))
    units = plan.work["units"]
    lines.append(f"work: {plan.work['total_units']:.2f} x a plain forward+backward over the corpus ("
                 + ", ".join(f"{name} {value:.3f}" for name, value in units.items()) + ")"
                 + (f"; {plan.work['seconds'] / 3600:,.1f} h wall, {plan.work['gpu_hours']:,.1f} rank-hours"
                    if "seconds" in plan.work else ""))
    if plan.memory_per_rank:
        lines.append(f"fits in {format_bytes(plan.memory_per_rank)} per rank" if plan.fits else
                     f"does not fit: {plan.reason}")
    return lines


def add_plan_flags(parser: argparse.ArgumentParser) -> None:
    default = Settings.default
    parser.add_argument("--model", required=True, help="HF model directory, config .json, .gguf file or 'smollm2'")
    parser.add_argument("--corpus", help="measure this corpus (file, directory or glob of shards)")
    parser.add_argument("--docs", type=positive_int, help="number of documents (instead of --corpus)")
    parser.add_argument("--tokens-per-doc", type=positive_int, help="tokens per document (with --docs)")
    parser.add_argument("--queries", required=True, help="number of queries, or the queries .jsonl")
    parser.add_argument("--query-rank", default=str(default("query_rank")), help="full, or the rank R")
    parser.add_argument("--modules", default=default("modules"), help="mlp | all | a regex on module names")
    parser.add_argument("--strategy", default=default("strategy"), choices=["ekfac", "kfac", "diagonal", "identity"])
    parser.add_argument("--dtype", default=default("dtype"), choices=["float32", "bfloat16"])
    parser.add_argument("--factor-dtype", default=default("factor_dtype"), choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-length", type=positive_int, default=default("max_length"))
    parser.add_argument("--batch-size", type=positive_int, default=default("batch_size"))
    parser.add_argument("--factor-docs", type=positive_int, default=default("factor_docs"))
    parser.add_argument("--token-topk", type=int, default=default("token_topk"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--nproc", type=positive_int, default=1, help="ranks (torchrun --nproc-per-node x nodes)")
    parser.add_argument("--module-shards", type=positive_int, default=default("module_shards"),
                        help="factors split by module over this many ranks (without --memory-per-rank; with it the "
                             "plan chooses)")
    parser.add_argument("--memory-budget", help="as run's --memory-budget: bytes for the queries in scoring")
    parser.add_argument("--memory-per-rank", help="memory of one rank: GPU memory on cuda, RAM on cpu (80GiB)")
    parser.add_argument("--host-memory-per-rank", help="host RAM of one rank on cuda")
    parser.add_argument("--tokens-per-s", type=float, help="measured plain forward+backward tokens/s of one rank")
    parser.add_argument("--json", help="also write the plan to this JSON file")


def run_plan(args, command_line: str, progress: bool) -> None:
    from precompute.rundir import write_json

    w, _ = workload_from_args(args)
    shape = model_shape(args.model, args.modules)
    plan = make_plan(shape, w, optional_bytes(args.memory_per_rank, "--memory-per-rank"),
                     optional_bytes(args.host_memory_per_rank, "--host-memory-per-rank"), args.tokens_per_s)
    print("\n".join(plan_lines(plan)))
    if args.json:
        write_json(args.json, plan.to_json())
    if not plan.fits:
        raise UserInputError(plan.reason)


def check_plan(settings: Settings, texts: list[str], queries: list[dict] | None, command: str) -> Plan | None:
    """Log the plan of a fit / score / run at its start; refuse (UserInputError) when --memory-per-rank is given
    and the requested settings do not fit it."""
    sizes = corpus_sizes(settings.model, texts, settings.max_length)
    longest = max((len(r["prompt"]) + len(r["completion"]) for r in queries or []), default=0)
    device = settings.device
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    w = pm.Workload(n_docs=sizes["n_docs"], tokens_per_doc=sizes["tokens_per_doc"], batch_tokens=sizes["batch_tokens"],
                    text_bytes=sizes["text_bytes"], n_queries=len(queries or []),
                    query_tokens=min(settings.max_length, max(2, round(longest / sizes["chars_per_token"]))),
                    factor_docs=min(settings.factor_docs or sizes["n_docs"], sizes["n_docs"]),
                    batch_size=settings.batch_size, query_rank=settings.query_rank, strategy=settings.strategy,
                    dtype=settings.dtype, factor_dtype=settings.factor_dtype, token_topk=settings.token_topk,
                    device=device.split(":")[0], nproc=int(os.environ.get("WORLD_SIZE", "1")),
                    module_shards=settings.module_shards, memory_budget=settings.memory_budget)
    limit = optional_bytes(settings.memory_per_rank, "--memory-per-rank")
    try:
        shape = model_shape(settings.model, settings.modules)
    except UserInputError:
        raise
    except Exception as error:  # an architecture the plan cannot measure must not stop a run that needs no plan
        if limit is not None:
            raise UserInputError(f"--memory-per-rank: cannot plan model {settings.model} ({error})") from None
        log.warning("no memory plan for model %s (%s)", settings.model, error)
        return None
    check_memory_budget(settings, shape, command)
    plan = make_plan(shape, w, only=STAGES_OF[command])
    for line in plan_lines(plan):                     # stage totals at info, their parts at debug
        log.log(logging.DEBUG if line.startswith("      ") else logging.INFO, "plan: %s", line)
    if limit is not None and plan.peak_bytes_per_rank > limit:
        fitting = make_plan(shape, w, limit, only=STAGES_OF[command])
        hint = (f"; batch size {fitting.settings['batch_size']} with {fitting.settings['module_shards']} module "
                f"shard(s) would fit" if fitting.fits else f"; {fitting.reason}")
        raise UserInputError(f"--memory-per-rank {settings.memory_per_rank}: the plan needs "
                             f"{format_bytes(plan.peak_bytes_per_rank)} per rank at batch size {settings.batch_size} "
                             f"({plan.peak_stage} stage){hint}")
    return plan


def check_memory_budget(settings: Settings, shape, command: str) -> None:
    """engine.scoring.within_budget's refusal, up front: --memory-budget below one query's preconditioned
    gradients over this rank's modules would otherwise stop the run after the fit."""
    if command == "fit" or settings.memory_budget is None:
        return
    modules = pm.factor_bytes_per_rank(shape, settings.strategy, settings.factor_dtype, settings.module_shards)[1]
    per_query = pm.query_storage_bytes(shape, modules, 1, settings.query_rank)
    if per_query > settings.memory_budget:
        raise UserInputError(f"--memory-budget {settings.memory_budget:,} bytes is below one query's preconditioned "
                             f"gradients ({per_query:,} bytes over {len(modules)} modules)")
