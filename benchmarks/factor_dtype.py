"""16-bit factor storage against float32 on the demo model: `python -m precompute bench-factor-dtype [--docs N]`.

Fits the demo's EK-FAC factors (its settings: 2,000 fit documents, 256 tokens, sampled Fisher, MLP modules) once
in float32, stores copies in bfloat16 and float16 (exactly what `fit --factor-dtype` stores: the cast is fit's last
step), preconditions the demo's 136 queries at rank 32 with each, scores DOCS random documents (default 2,000)
and prints, per storage dtype, the per-query Pearson and Spearman correlation with the float32 scores (min and
median over queries), the top-100 overlap and the factor bytes.
"""
import argparse
import time

import numpy as np
import torch
from scipy import stats

from engine.batches import make_batches, tokenize_documents
from engine.factors import FactorArguments, Factors, factor_bytes, fit_factors
from engine.model import find_tracked_modules, load_model
from engine.query_stream import preconditioned_queries
from engine.scoring import score_documents
from precompute.worlds.demo import CORPUS, DEMO_SETTINGS, MODEL, QUERIES, ensure_corpus
from precompute.inputs.readers import read_corpus, read_queries
from precompute.pipeline.stages import tokenize_queries
from precompute.pipeline.session import Session
from precompute.pipeline.settings import Settings

DTYPES = ("bfloat16", "float16")


def stored_as(factors: Factors, dtype: str) -> Factors:
    tensors = {n: {k: t.to(getattr(torch, dtype)) for k, t in d.items()} for n, d in factors.tensors.items()}
    return Factors(factors.strategy, factors.fisher, factors.modules, factors.n_documents, factors.n_tokens,
                   tensors, shapes=factors.shapes)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", type=int, default=2000, help="documents scored with each factor dtype")


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    n_docs = args.docs
    ensure_corpus()
    settings = Settings(model=MODEL, corpus=CORPUS, queries=QUERIES, **DEMO_SETTINGS).checked()
    model, tokenizer = load_model(MODEL, device="cpu", dtype="float32")
    tracked = find_tracked_modules(model, settings.modules)
    corpus, queries = read_corpus(CORPUS), read_queries(QUERIES)
    rng = np.random.default_rng(settings.seed)
    fit_rows = np.sort(rng.choice(len(corpus), size=settings.factor_docs, replace=False))
    docs = tokenize_documents(tokenizer, [corpus.texts[i] for i in fit_rows], settings.max_length)
    docs.sort(key=lambda item: len(item.input_ids))
    started = time.perf_counter()
    exact = fit_factors(model, tracked, make_batches(docs, settings.batch_size, tokenizer.pad_token_id),
                        FactorArguments(settings.strategy, settings.fisher, settings.seed))
    print(f"fit: {time.perf_counter() - started:.0f} s")
    session = Session(model, tokenizer, tracked, "cpu", 0, 1)
    query_tokens = tokenize_queries(session, queries, settings)
    score_rows = np.sort(rng.choice(len(corpus), size=min(n_docs, len(corpus)), replace=False))
    scored = tokenize_documents(tokenizer, [corpus.texts[i] for i in score_rows], settings.max_length)
    results = {}
    for dtype in ("float32",) + DTYPES:
        factors = exact if dtype == "float32" else stored_as(exact, dtype)
        pq, _ = preconditioned_queries(model, tracked, query_tokens, factors,
                                       settings.query_arguments(), settings.batch_size)
        parts = score_documents(model, tracked, pq, list(make_batches(scored, settings.batch_size,
                                                                      tokenizer.pad_token_id)), progress=False)
        results[dtype] = np.concatenate([part.scores.numpy() for part in parts], axis=1).astype(np.float64)
    total = {dtype: sum(factor_bytes(exact.strategy, *exact.shapes[n], dtype) for n in exact.modules)
             for dtype in ("float32",) + DTYPES}
    print(f"{len(query_tokens)} queries x {len(scored)} documents, threads {torch.get_num_threads()}; "
          f"float32 factors {total['float32'] / 2**20:.2f} MiB")
    for dtype in DTYPES:
        pearson = [stats.pearsonr(a, b)[0] for a, b in zip(results["float32"], results[dtype])]
        spearman = [stats.spearmanr(a, b)[0] for a, b in zip(results["float32"], results[dtype])]
        overlap = [len(set(np.argsort(-a)[:100]) & set(np.argsort(-b)[:100])) / 100
                   for a, b in zip(results["float32"], results[dtype])]
        print(f"{dtype}: {total[dtype] / 2**20:.2f} MiB; per-query Pearson min {min(pearson):.6f} median "
              f"{np.median(pearson):.6f}; Spearman min {min(spearman):.6f}; top-100 overlap min {min(overlap):.2f}")
