"""`python -m precompute <command>`: fit, score, run, analyze, demo, synth, bench (and the commands below).

Bad input (a missing file, an invalid line, an unknown module spec, a complete run without --overwrite, a run
directory another process is writing...) prints one line `error: ...` and exits with code 2, never a traceback.
Every command that writes a run directory holds its lock (precompute.rundir.lock) for its whole duration.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
from dataclasses import dataclass

from engine.arguments import FISHERS, MEASUREMENTS, STRATEGIES
from engine.errors import EngineInputError
from precompute.rundir.errors import UserInputError
from precompute.index.options import add_index_options
from precompute.rundir import RunLock
from precompute.pipeline.flag_values import positive_int
from precompute.pipeline.settings import Settings
from precompute.pipeline.threads import add_threads_flag, use_threads

EXIT_BAD_INPUT = 2


def add_fit_flags(parser: argparse.ArgumentParser) -> None:
    default = Settings.default
    parser.add_argument("--model", required=True, help="HF model directory, .gguf file, or 'smollm2'")
    parser.add_argument("--corpus", required=True, help="documents: .jsonl[.gz|.zst] or .parquet with id, "
                        "text[, source, ...], or a directory or glob of such shards")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--strategy", default=default("strategy"), choices=STRATEGIES)
    parser.add_argument("--fisher", default=default("fisher"), choices=FISHERS)
    parser.add_argument("--modules", default=default("modules"), help="mlp | all | a regex on module names")
    parser.add_argument("--factor-docs", type=positive_int, default=default("factor_docs"),
                        help="documents used to fit the factors (default: all)")
    parser.add_argument("--max-length", type=positive_int, default=default("max_length"),
                        help="tokens per document / query")
    parser.add_argument("--batch-size", type=positive_int, default=default("batch_size"))
    parser.add_argument("--device", default=default("device"), choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default=default("dtype"), choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=default("seed"))
    parser.add_argument("--overwrite", action="store_true", help="replace a complete run in --out")
    parser.add_argument("--memory-per-rank", default=default("memory_per_rank"),
                        help="refuse up front when the memory plan (python -m precompute plan) needs more per rank "
                             "than this (GPU memory on cuda, RAM on cpu; e.g. 80GiB)")
    parser.add_argument("--module-shards", type=positive_int, default=default("module_shards"),
                        help="under torchrun: split the factors by module over this many ranks (each holds and "
                             "writes only its shard; must divide the number of ranks; the rest split the documents)")
    parser.add_argument("--factor-dtype", default=default("factor_dtype"), choices=["float32", "bfloat16", "float16"],
                        help="storage of the factors (eigendecomposition in float64 regardless)")


def add_score_flags(parser: argparse.ArgumentParser) -> None:
    default = Settings.default
    add_fit_flags(parser)
    parser.add_argument("--queries", required=True, help="queries .jsonl: id, task, prompt, completion[, answer, steps]")
    parser.add_argument("--damping", default=default("damping"),
                        help="auto (0.1 x mean eigenvalue per module) or a number")
    parser.add_argument("--query-rank", default=str(default("query_rank")),
                        help="full, or the rank R of the low-rank query gradients")
    parser.add_argument("--measurement", default=default("measurement"), choices=MEASUREMENTS,
                        help="what each query's gradient is of: completion = −log p(completion | prompt); answer = "
                             "−log p of the tokens of the answer's last occurrence in the completion only (queries "
                             "need an `answer`) (engine/task.py)")
    parser.add_argument("--token-topk", type=int, default=default("token_topk"),
                        help="top and bottom documents per query (by raw score) that get per-token scores "
                             "(default: %(default)s, the most the dashboard shows per side)")
    parser.add_argument("--chunk-docs", type=positive_int, default=default("chunk_docs"),
                        help="documents per resumable score chunk (default: 64 batches)")
    parser.add_argument("--top-k", type=positive_int, default=default("top_k"), help="documents per side in top_docs")
    parser.add_argument("--memory-budget", default=default("memory_budget"),
                        help="bytes per rank for the preconditioned queries in scoring, e.g. 8GiB: modules are "
                             "materialised (dense P) only within it, and the queries are scored in batches when even "
                             "their low-rank factors do not fit (default: an 8 GiB dense cache)")
    parser.add_argument("--validate", action="store_true",
                        help="then tail-patch validation with its defaults (python -m precompute validate --help)")
    parser.add_argument("--counterfactual", action="store_true",
                        help="then PBRF responses and the LDS leaderboard with their defaults (python -m precompute "
                             "counterfactual --help; minutes to hours: one Newton-CG solve per set)")
    parser.add_argument("--index", action="store_true",
                        help="also build RUN/index/ for `ask` in the same forward+backward pass as scoring (instead "
                             "of a second pass with `python -m precompute index`); options --index-*")
    add_index_options(parser.add_argument_group("the index (with --index; as `index`'s --method, --rank, ...)"),
                      prefix="index-")


def add_analyze_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", "--out", dest="out", required=True, help="run directory")
    parser.add_argument("--top-k", type=positive_int, default=Settings.default("top_k"),
                        help="documents per side in top_docs")


def add_demo_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=os.path.join("runs", "demo"))
    parser.add_argument("--overwrite", action="store_true")


def add_synth_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=os.path.join("runs", "synth"))
    parser.add_argument("--queries", type=positive_int, default=100)
    parser.add_argument("--docs", type=positive_int, default=1_000_000)
    parser.add_argument("--layers", type=positive_int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token-topk", type=positive_int, default=Settings.default("token_topk"),
                        help="top and bottom documents per query with (synthetic) per-token scores")
    parser.add_argument("--overwrite", action="store_true")


def run_model_command(name: str):
    def run(args, command_line: str, progress: bool) -> None:
        from precompute.pipeline import commands
        getattr(commands, f"{name}_command")(Settings.from_args(args), command_line, progress)
    return run


def run_analyze(args, command_line: str, progress: bool) -> None:
    from precompute.pipeline.commands import analyze_command
    analyze_command(args.out, args.top_k, progress)


def run_demo(args, command_line: str, progress: bool) -> None:
    from precompute.worlds.demo import run_demo as demo
    demo(args.out, overwrite=args.overwrite, progress=progress)


def run_synth(args, command_line: str, progress: bool) -> None:
    from precompute.worlds.synth import write_synthetic_run
    run = write_synthetic_run(args.out, n_queries=args.queries, n_docs=args.docs, n_layers=args.layers,
                              seed=args.seed, token_topk=args.token_topk, overwrite=args.overwrite,
                              progress=progress, command=command_line)
    print(f"synthetic run written: {run.path}")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_flags: object            # (parser) -> None, or "module:function" imported when the parser is built
    run: object                  # (args, command_line, progress) -> None, or "module:function"
    writes: str | None = "out"   # the args attribute naming the run directory it writes (locked), or None
    creates: bool = True         # False: the run directory must exist already (analyze, validate, index)
    threads: bool = True         # takes --threads (torch-side work; precompute.pipeline.threads)

    def resolve(self, attribute: str):
        value = getattr(self, attribute)
        if isinstance(value, str):
            module, function = value.split(":")
            return getattr(importlib.import_module(module), function)
        return value


# Commands from other modules are named "module:function" (imported only when used; keep torch imports lazy).
COMMANDS = (
    Command("fit", "fit the curvature factors into RUN/factors", add_fit_flags, run_model_command("fit")),
    Command("score", "score documents against queries with RUN's factors (then token scores, analyze; with "
            "--index also RUN/index in the same pass)",
            add_score_flags, run_model_command("score")),
    Command("run", "fit + score + token scores + analyze (with --index also RUN/index)", add_score_flags,
            run_model_command("run")),
    Command("analyze", "(re)compute RUN/analysis from the scores, without rescoring", add_analyze_flags, run_analyze,
            creates=False, threads=False),
    Command("demo", "the demo world end to end (re-uses a complete run)", add_demo_flags, run_demo),
    Command("synth", "a synthetic run directory (no model) for dashboard work", add_synth_flags, run_synth,
            threads=False),
    Command("validate", "tail-patch validation: does training on the top documents change the answer?",
            "precompute.validation.command:add_validate_flags", "precompute.validation.command:validate_main", creates=False),
    Command("counterfactual", "PBRF responses to random document sets and the LDS of every ranking method",
            "precompute.counterfactual.command:add_counterfactual_flags", "precompute.counterfactual.command:counterfactual_main",
            creates=False),
    Command("plan", "predicted memory per rank, disk and work of a run, from a model config alone",
            "precompute.plan.command:add_plan_flags", "precompute.plan.command:run_plan", writes=None,
            threads=False),
    Command("import-published", "the published scores of Ruis et al. (2024) as a run directory (no model)",
            "precompute.published.importer:add_import_flags", "precompute.published.importer:run_import", writes=None,
            threads=False),
    Command("export-published", "a published file's documents and prompts as corpus / queries inputs",
            "precompute.published.importer:add_export_flags", "precompute.published.importer:run_export", writes=None,
            threads=False),
    Command("index", "compressed document gradients of a complete run for `ask` (RUN/index)",
            "precompute.index.build:add_index_flags", "precompute.index.build:run_index", creates=False),
    Command("ask", "a new question against RUN's index: top and bottom documents", "precompute.index.ask:add_ask_flags",
            "precompute.index.ask:run_ask", writes=None),
    Command("complete-queries", "fill in every query's missing completion with the model's own greedy answer",
            "precompute.inputs.complete_queries:add_flags", "precompute.inputs.complete_queries:run_command",
            writes=None),
    Command("analysis-docs", "the analysis section of docs/run-directory.md, rendered from the table registry",
            "precompute.analysis.docs:add_flags", "precompute.analysis.docs:run_command", writes=None, threads=False),
    # benchmarks live outside the product package (benchmarks/), run through this one table
    Command("bench", "scoring pass against a plain forward+backward pass (benchmarks/scoring_cost.py)",
            "benchmarks.scoring_cost:add_flags", "benchmarks.scoring_cost:run_command", writes=None),
    Command("bench-kronfluence", "our engine against kronfluence 1.0.1 at matched settings (random or real model)",
            "benchmarks.kronfluence:add_flags", "benchmarks.kronfluence:run_command", writes=None),
    Command("bench-index", "the index's accuracy / cost trade-off on a COPY of a complete run",
            "benchmarks.index:add_flags", "benchmarks.index:run_command", writes=None, threads=False),
    Command("bench-plan", "the memory plan against a measured run's peak", "benchmarks.plan:add_flags",
            "benchmarks.plan:run_command", writes=None, threads=False),
    Command("bench-precondition", "per-query setup cost at SmolLM2's MLP shapes", "benchmarks.precondition:add_flags",
            "benchmarks.precondition:run_command", writes=None),
    Command("bench-factor-dtype", "16-bit factor storage against float32 on the demo model",
            "benchmarks.factor_dtype:add_flags", "benchmarks.factor_dtype:run_command", writes=None),
)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Every command's name and help; the flags of `selected` only (None: all), so that a command imports only
    its own module (the benchmarks and the torch-side commands import torch)."""
    parser = argparse.ArgumentParser(prog="python -m precompute", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only, no progress bars")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        if selected is None or command.name == selected:
            command.resolve("add_flags")(subparser)
            if command.threads:
                add_threads_flag(subparser)
    return parser


def selected_command(argv: list[str]) -> str | None:
    names = {command.name for command in COMMANDS}
    return next((word for word in argv if word in names), None)


def configure_logging(quiet: bool) -> None:
    rank = int(os.environ.get("RANK", "0"))
    level = logging.WARNING if quiet or rank != 0 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def dispatch(args: argparse.Namespace, command_line: str) -> None:
    """Run the command; one that writes a run directory holds its lock meanwhile (rank 0 under torchrun)."""
    command = next(c for c in COMMANDS if c.name == args.command)
    if command.threads:
        use_threads(args.threads)
    run = command.resolve("run")
    if command.writes is None or int(os.environ.get("RANK", "0")) != 0:
        run(args, command_line, not args.quiet)
        return
    with RunLock(getattr(args, command.writes), create=command.creates):
        run(args, command_line, not args.quiet)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(selected_command(argv)).parse_args(argv)
    configure_logging(args.quiet)
    try:
        dispatch(args, "python -m precompute " + shlex.join(argv))
    except (UserInputError, EngineInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
