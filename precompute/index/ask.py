"""`python -m precompute ask --run DIR --prompt TEXT [--completion TEXT | --generate]`: a new question in seconds.

The question's completion gradient is preconditioned exactly as the run's scoring did (its factors, damping and
query rank), projected with the index's Π, and the index is searched for the most positive and most negative
documents (faiss candidates re-scored against the stored vectors). The first few documents per side are then
re-run, in one batched pass, for their exact score and per-token split (engine.scoring.split_by_token), as the
run's token_scores.parquet holds for its own queries. `Asker` keeps everything loaded; the dashboard's worker
(precompute/index/worker.py) uses it for every question.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable

import numpy as np

from engine.arguments import MEASUREMENTS
from precompute import rundir

from precompute.index import store as index_store
from precompute.rundir.errors import UserInputError
from precompute.pipeline.run_model import open_run_model, read_documents
from precompute.pipeline.measurement import measured_query_tokens

log = logging.getLogger("precompute")
DEFAULT_TOP = 50
DEFAULT_TOKEN_DOCS = 10
DEFAULT_NEW_TOKENS = 256     # the cap of a generated completion; it ends earlier at eos or a blank line
PREVIEW = 60


def add_ask_flags(parser) -> None:
    parser.add_argument("--run", required=True, help="a run directory with an index (python -m precompute index)")
    parser.add_argument("--prompt", required=True, help="the question's prompt")
    parser.add_argument("--completion", default=None, help="the completion whose likelihood is explained")
    parser.add_argument("--generate", action="store_true", help="use the model's greedy completion of the prompt")
    parser.add_argument("--measurement", default=None, choices=MEASUREMENTS,
                        help="what is explained: the completion, or only the tokens of --answer in it (default: as "
                             "the run was scored)")
    parser.add_argument("--answer", default=None, help="the answer whose tokens --measurement answer explains")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_NEW_TOKENS,
                        help="with --generate: the cap; the completion ends earlier at eos or a blank line")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help="documents per side")
    parser.add_argument("--token-docs", type=int, default=DEFAULT_TOKEN_DOCS,
                        help="documents per side re-run for their exact score and per-token split")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="default: the run's model")
    parser.add_argument("--nprobe", type=int, default=None, help="ivfpq index: lists searched (default: as built)")


class Asker:
    """A run's model, factors and index (compressors, stored vectors, search), loaded once."""

    def __init__(self, run_path: str, model: str | None = None, device: str = "auto", nprobe: int | None = None,
                 on_progress: Callable[[str], None] = lambda message: None):
        on_progress("reading the index")
        self.manifest = index_store.read_manifest(run_path)          # no index: say so before importing torch
        from precompute.index.search import IndexSearch

        self.documents = read_documents(run_path)
        on_progress("loading the model and the factors")
        self.context = open_run_model(run_path, model, device, self.documents["id"].astype(str))
        index_store.check_fresh(run_path, self.manifest, self.context.hashes)
        on_progress("opening the stored vectors and the search index")
        self.index = IndexSearch(run_path, self.manifest, nprobe)
        self.path = run_path

    @property
    def max_length(self) -> int:
        return self.context.settings.max_length

    def count_tokens(self, text: str, special: bool) -> int:
        return len(self.context.session.tokenizer(text, add_special_tokens=special)["input_ids"])

    def generate(self, prompt: str, max_new_tokens: int) -> tuple[str, dict]:
        """The model's greedy completion (engine.generate) to the end of its answer — eos, a blank line, or the cap
        of `max_new_tokens` within the run's max_length — and {"ended": which, "cap": tokens, "note": a sentence}."""
        from engine.generate import greedy_answers

        cap = max(1, min(max_new_tokens, self.max_length - self.count_tokens(prompt, special=True)))
        session = self.context.session
        answer = greedy_answers(session.model, session.tokenizer, [prompt], cap, batch_size=1, progress=False,
                                stop_at_blank_line=True)[0]
        ended = {"eos": "the model's end-of-sequence token", "blank line": "a blank line",
                 "cap": f"the cap of {cap} tokens"}[answer.ended]
        note = f"the model's greedy completion, ended at {ended}"
        return answer.text, {"ended": answer.ended, "cap": cap, "note": note}

    def check_question(self, prompt: str, completion: str | None, generate: bool) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserInputError("the prompt is empty; type a question")
        if generate == (completion is not None and completion != ""):
            raise UserInputError("give a completion or let the model complete (--completion TEXT or --generate), "
                                 "not both and not neither")
        n_prompt = self.count_tokens(prompt, special=True)
        n_completion = self.count_tokens(completion, special=False) if completion else 1
        if n_prompt + n_completion > self.max_length:
            raise UserInputError(f"the prompt ({n_prompt} tokens) and completion ({n_completion} tokens) are longer "
                                 f"than the run's max_length of {self.max_length} tokens; shorten the prompt")

    def preconditioned(self, prompt: str, completion: str, answer: str | None = None, measurement: str | None = None):
        """(the question's preconditioned gradient, its nats, its number of measured completion tokens); measurement
        None: the run's."""
        measurement = measurement or self.context.settings.measurement
        from engine.batches import IGNORE
        from engine.query_stream import preconditioned_queries
        from engine.task import TASKS

        context = self.context
        tokens = measured_query_tokens(context.session.tokenizer, [prompt], [completion], [answer], self.max_length,
                                       measurement)
        pq, nats = preconditioned_queries(context.session.model, context.session.tracked, tokens, context.factors,
                                          context.settings.query_arguments(), 1, task=TASKS[measurement])
        n_completion = sum(label != IGNORE for label in tokens[0].labels)
        return pq, float(nats[0]), int(n_completion)

    def token_splits(self, pq, doc_indices: list[int]) -> dict[int, tuple[list[str], np.ndarray]]:
        """doc index -> (its tokens, their scores): every document in one batched pass (split_by_token)."""
        from engine.batches import tokenize_documents
        from engine.scoring import split_by_token

        session, doc_indices = self.context.session, sorted(set(doc_indices))
        items = tokenize_documents(session.tokenizer, [str(self.documents["text"].iloc[d]) for d in doc_indices],
                                   self.max_length)
        return {doc_indices[j]: ([session.tokenizer.decode([token]) for token in items[j].input_ids],
                                 scores[0].numpy())
                for j, scores in split_by_token(session.model, session.tracked, pq, items,
                                                batch_size=self.context.settings.batch_size,
                                                pad_id=session.tokenizer.pad_token_id)}

    def ask(self, prompt: str, completion: str | None = None, generate: bool = False, top: int = DEFAULT_TOP,
            token_docs: int = DEFAULT_TOKEN_DOCS, max_new_tokens: int = DEFAULT_NEW_TOKENS, answer: str | None = None,
            measurement: str | None = None) -> dict:
        """Top and bottom documents for the question; `measurement` (default: the run's) chooses what is explained:
        the whole completion, or only its `answer`'s tokens (engine.task)."""
        measurement = measurement or self.context.settings.measurement
        if top < 1 or token_docs < 0:
            raise UserInputError(f"top must be at least 1 and token_docs at least 0 (got {top}, {token_docs})")
        self.check_question(prompt, completion, generate)
        started = time.perf_counter()
        generation = None
        if generate:
            completion, generation = self.generate(prompt, max_new_tokens)
            if not completion.strip():
                raise UserInputError("the model's completion of this prompt is empty; type a completion instead")
        generated_s = time.perf_counter() - started
        pq, nats, n_completion = self.preconditioned(prompt, completion, answer, measurement)
        found = self.index.top_and_bottom(pq, top)
        searched_s = time.perf_counter() - started
        result = {"run": self.path, "prompt": prompt, "completion": completion, "generated": bool(generate),
                  "generation": generation, "measurement": measurement, "answer": answer, "nats": nats,
                  "n_completion_tokens": n_completion,
                  "index": {k: self.manifest.get(k) for k in ("method", "rank", "dim", "dtype")}}
        splits = self.token_splits(pq, [int(doc) for indices, _ in found.values() for doc in indices[:token_docs]])
        for side, (indices, scores) in found.items():
            result[side] = [self.document_entry(rank, int(doc), float(score),
                                                splits.get(int(doc)) if rank <= token_docs else None)
                            for rank, (doc, score) in enumerate(zip(indices, scores), start=1)]
        total_s = time.perf_counter() - started
        result["seconds"] = {"generate": round(generated_s, 3), "search": round(searched_s - generated_s, 3),
                             "token_scores": round(total_s - searched_s, 3), "total": round(total_s, 3)}
        return result

    def document_entry(self, rank: int, doc: int, score: float, split: tuple | None) -> dict:
        entry = {"rank": rank, "doc_index": doc, "doc_id": str(self.documents["id"].iloc[doc]),
                 "source": str(self.documents["source"].iloc[doc]), "score": score, "exact_score": None,
                 "tokens": None, "token_scores": None}
        if split is not None:
            tokens, scores = split
            entry.update(exact_score=float(scores.sum()), tokens=tokens,
                         token_scores=[float(x) for x in scores])
        return entry


def print_table(result: dict, documents) -> None:
    note = f" ({result['generation']['note']})" if result.get("generation") else ""
    print(f"prompt: {result['prompt']!r}\ncompletion{note}: "
          f"{result['completion']!r}   ({result['nats']:.3f} nats)")
    for side, title in (("top", "most positive (helps the completion)"), ("bottom", "most negative")):
        print(f"\n{title}\n{'rank':>4}  {'index score':>12}  {'exact':>12}  {'doc id':<16} {'source':<12} text")
        for entry in result[side]:
            exact = "" if entry["exact_score"] is None else f"{entry['exact_score']:+12.4g}"
            text = " ".join(str(documents["text"].iloc[entry["doc_index"]]).split())[:PREVIEW]
            print(f"{entry['rank']:>4}  {entry['score']:+12.4g}  {exact:>12}  {entry['doc_id']:<16.16} "
                  f"{entry['source']:<12.12} {text}")
    print(f"\n{result['seconds']['total']:.2f} s")


def run_ask(args, command_line: str, progress: bool) -> None:
    """The CLI entry (precompute/__main__.py's command table)."""
    if not os.path.isdir(args.run):
        raise UserInputError(f"{args.run}: run directory not found")
    asker = Asker(args.run, args.model, args.device, args.nprobe,
                  on_progress=lambda message: log.info("ask: %s", message))
    result = asker.ask(args.prompt, args.completion, args.generate, args.top, args.token_docs, args.max_new_tokens,
                       args.answer, args.measurement)
    print_table(result, asker.documents)
    if args.json:
        rundir.write_json(args.json, result)
        print(f"written: {args.json}")
