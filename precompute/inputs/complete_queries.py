"""`python -m precompute complete-queries --model M --queries IN.jsonl --out OUT.jsonl`: give every query
that has no `completion` the model's own greedy completion (engine.generate), so that influence explains what
the model actually answers.

IN.jsonl: the queries format (docs/run-directory.md) with `completion` optional. Queries that have one keep it.
With --chat the prompt is wrapped in the tokenizer's chat template first (instruct models); the wrapped text
becomes the query's `prompt` (scoring must condition on what generation saw) and the original is kept as
`question`. Generated queries get `"generated": true` and the generation settings in `generation`.
"""
from __future__ import annotations

import argparse
import logging

from precompute import rundir
from precompute.rundir.errors import UserInputError
from precompute.inputs.readers import check_unique, jsonl_records, string_field

log = logging.getLogger("precompute")


def read_prompts(path: str) -> list[dict]:
    """Query records; `id`, `task`, `prompt` required, `completion` optional (missing, null or empty)."""
    records, lines = [], []
    for number, record in jsonl_records(path, "queries"):
        where = f"{path}: line {number}"
        for name in ("id", "task", "prompt"):
            record[name] = string_field(record, name, where)
        record["completion"] = string_field(record, "completion", where, required=False, allow_empty=True) or None
        records.append(record)
        lines.append(number)
    if not records:
        raise UserInputError(f"{path}: no queries")
    check_unique([r["id"] for r in records], lines, path)
    return records


def fill_completions(records: list[dict], model, tokenizer, chat: bool = False, max_new_tokens: int = 128,
                     batch_size: int = 8, progress: bool = True) -> list[dict]:
    """The records with every missing completion generated greedily (the others unchanged)."""
    from engine.generate import chat_prompt, greedy_completions

    missing = [i for i, record in enumerate(records) if not record.get("completion")]
    if not missing:
        return records
    prompts = [chat_prompt(tokenizer, records[i]["prompt"]) if chat else records[i]["prompt"] for i in missing]
    log.info("generating greedy completions for %d of %d queries", len(missing), len(records))
    texts = greedy_completions(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                               progress=progress)
    out = [dict(record) for record in records]
    for index, prompt, text in zip(missing, prompts, texts):
        if chat:
            out[index]["question"] = records[index]["prompt"]
        out[index].update(prompt=prompt, completion=text, generated=True,
                          generation={"greedy": True, "max_new_tokens": max_new_tokens, "chat_template": chat})
    return out


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="HF model directory, .gguf file, or 'smollm2'")
    parser.add_argument("--queries", required=True, help="queries .jsonl; `completion` optional")
    parser.add_argument("--out", required=True, help="queries .jsonl with every completion filled in")
    parser.add_argument("--chat", action="store_true", help="wrap prompts in the tokenizer's chat template")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    from engine.model import load_model
    records = read_prompts(args.queries)
    model, tokenizer = load_model(args.model, device=args.device, dtype=args.dtype)
    filled = fill_completions(records, model, tokenizer, chat=args.chat, max_new_tokens=args.max_new_tokens,
                              batch_size=args.batch_size, progress=progress)
    rundir.write_jsonl(args.out, filled)
    print(f"written: {args.out} ({sum(1 for r in filled if r.get('generated'))} completions generated)")
