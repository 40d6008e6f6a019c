"""`python -m precompute <command>`: fit, score, analyze, run, demo, synth, bench.

Bad input (a missing file, an invalid line, an unknown module spec, a complete run without --overwrite...)
prints one line `error: ...` and exits with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

from precompute.errors import UserInputError

EXIT_BAD_INPUT = 2


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_fit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="HF model directory, .gguf file, or 'smollm2'")
    parser.add_argument("--corpus", required=True, help="documents: .jsonl or .parquet with id, text[, source]")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--strategy", default="ekfac", choices=["ekfac", "kfac", "diagonal", "identity"])
    parser.add_argument("--fisher", default="sampled", choices=["sampled", "empirical"])
    parser.add_argument("--modules", default="mlp", help="mlp | all | a regex on module names")
    parser.add_argument("--factor-docs", type=positive_int, default=None,
                        help="documents used to fit the factors (default: all)")
    parser.add_argument("--max-length", type=positive_int, default=256, help="tokens per document / query")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a complete run in --out")


def add_score_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", required=True, help="queries .jsonl: id, task, prompt, completion[, answer, steps]")
    parser.add_argument("--damping", default="auto", help="auto (0.1 x mean eigenvalue per module) or a number")
    parser.add_argument("--query-rank", default="32", help="full, or the rank R of the low-rank query gradients")
    parser.add_argument("--token-topk", type=int, default=10, help="top/bottom documents per query with token scores")
    parser.add_argument("--chunk-docs", type=positive_int, default=None,
                        help="documents per resumable score chunk (default: 64 batches)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m precompute", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only, no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit the curvature factors into RUN/factors")
    add_fit_flags(fit)
    score = commands.add_parser("score", help="score documents against queries with RUN's factors")
    add_fit_flags(score)
    add_score_flags(score)
    run = commands.add_parser("run", help="fit + score + analyze")
    add_fit_flags(run)
    add_score_flags(run)
    for sub in (score, run):
        sub.add_argument("--top-k", type=positive_int, default=100, help="documents per side in top_docs")

    analyze = commands.add_parser("analyze", help="(re)compute RUN/analysis from the scores")
    analyze.add_argument("--out", required=True, help="run directory")
    analyze.add_argument("--top-k", type=positive_int, default=100, help="documents per side in top_docs")

    demo = commands.add_parser("demo", help="the demo world end to end (re-uses a complete run)")
    demo.add_argument("--out", default=os.path.join("runs", "demo"))
    demo.add_argument("--overwrite", action="store_true")

    synth = commands.add_parser("synth", help="a synthetic run directory (no model) for dashboard work")
    synth.add_argument("--out", default=os.path.join("runs", "synth"))
    synth.add_argument("--queries", type=positive_int, default=100)
    synth.add_argument("--docs", type=positive_int, default=1_000_000)
    synth.add_argument("--layers", type=positive_int, default=6)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--token-topk", type=positive_int, default=10)
    synth.add_argument("--overwrite", action="store_true")

    commands.add_parser("bench", help="the engine benchmark (flags: python -m precompute bench --help)",
                        add_help=False)
    return parser


def configure_logging(quiet: bool) -> None:
    rank = int(os.environ.get("RANK", "0"))
    level = logging.WARNING if quiet or rank != 0 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def dispatch(args: argparse.Namespace, command_line: str) -> None:
    progress = not args.quiet
    if args.command == "synth":
        from precompute.synth import write_synthetic_run
        run = write_synthetic_run(args.out, n_queries=args.queries, n_docs=args.docs, n_layers=args.layers,
                                  seed=args.seed, token_topk=args.token_topk, overwrite=args.overwrite,
                                  progress=progress, command=command_line)
        print(f"synthetic run written: {run.path}")
    elif args.command == "analyze":
        from precompute.pipeline import analyze_command
        analyze_command(args, progress=progress)
    elif args.command == "demo":
        from precompute.demo import run_demo
        run_demo(args.out, overwrite=args.overwrite, progress=progress)
    else:
        from precompute import pipeline
        {"fit": pipeline.fit_command, "score": pipeline.score_command, "run": pipeline.run_command}[args.command](
            args, command_line=command_line, progress=progress)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from precompute.bench import main as bench_main
        return bench_main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet)
    command_line = "python -m precompute " + shlex.join(argv)
    try:
        dispatch(args, command_line)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # the engine's one-line input errors (a ValueError subclass)
        if type(error).__name__ == "EngineInputError":
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
