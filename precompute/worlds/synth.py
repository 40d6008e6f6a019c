"""`python -m precompute synth`: a complete, synthetic run directory in the contract format (no model).

For building and testing the dashboard at scale. The numbers are made up but shaped like the real thing:
reasoning queries of the same task share a latent document factor (they correlate), factual queries mostly do
not; scores are heavy-tailed (log-normal document gradient norms times Student-t factors); some documents are
planted with a query's answer (many for factual queries, few for reasoning ones) and pushed up its ranking;
per-layer scores sum to the scores; per-token scores of the top/bottom documents sum to their scores.
"""
from __future__ import annotations

import logging
import re
import time

import numpy as np
import pandas as pd

from precompute import analysis, rundir
from precompute.analysis import occurrence
from precompute.analysis.ranking import top_and_bottom
from precompute.rundir import layout, writers

log = logging.getLogger("precompute.worlds.synth")

TASK_SHARES = {"factual": 0.35, "arithmetic": 0.2, "slopes": 0.15, "linear_equation": 0.15,
               "factual_control": 0.075, "reasoning_control": 0.075}
SOURCE_SHARES = {"web": 0.4, "wiki": 0.2, "books": 0.1, "code": 0.1, "math": 0.12, "qa": 0.08}
# how strongly each source carries a task family's latent factor (reasoning leans on math/code)
REASONING_AFFINITY = {"web": 0.6, "wiki": 0.6, "books": 0.5, "code": 1.8, "math": 2.5, "qa": 1.0}
FACTUAL_AFFINITY = {"web": 1.0, "wiki": 2.2, "books": 0.8, "code": 0.3, "math": 0.4, "qa": 1.6}
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Egypt", "Cairo"),
            ("Canada", "Ottawa"), ("Norway", "Oslo"), ("Chile", "Santiago"), ("India", "New Delhi"),
            ("Spain", "Madrid"), ("Italy", "Rome"), ("Ghana", "Accra"), ("Poland", "Warsaw"), ("Cuba", "Havana"),
            ("Iran", "Tehran"), ("Nepal", "Kathmandu"), ("Greece", "Athens"), ("Mexico", "Mexico City"),
            ("Austria", "Vienna"), ("Vietnam", "Hanoi"), ("Sweden", "Stockholm"), ("Turkey", "Ankara")]
WORDS = ("river market theory garden signal history engine winter letter number method village energy story "
         "pattern value course table report model system water light order field paper study").split()
PLANTED_PER_QUERY = {"factual": 60, "reasoning": 4, "step": 8}
TOKEN = re.compile(r"\s*\S+")


def make_queries(n_queries: int, rng: np.random.Generator) -> list[dict]:
    tasks = rng.choice(list(TASK_SHARES), size=n_queries, p=list(TASK_SHARES.values()))
    queries = []
    for index, task in enumerate(sorted(tasks, key=list(TASK_SHARES).index)):
        a, b, c = (int(v) for v in rng.integers(2, 30, size=3))
        if task == "factual":
            country, capital = CAPITALS[index % len(CAPITALS)]
            query = dict(prompt=f"The capital of {country} is", completion=f" {capital}.", answer=capital, steps=[])
        elif task == "arithmetic":
            query = dict(prompt=f"Calculate ({a} + {b}) * {c} =", completion=f" {a + b} * {c} = {(a + b) * c}",
                         answer=str((a + b) * c), steps=[str(a + b)])
        elif task == "slopes":
            dx, slope = a % 7 + 1, b % 9 - 4
            query = dict(prompt=f"What is the slope of the line through (1, {c}) and ({1 + dx}, {c + slope * dx})?",
                         completion=f" The slope is {slope * dx} / {dx} = {slope}.", answer=str(slope),
                         steps=[str(slope * dx), str(dx)])
        elif task == "linear_equation":
            query = dict(prompt=f"Solve for x: {a}x + {b} = {a * c + b}.",
                         completion=f" {a}x = {a * c}, so x = {c}.", answer=str(c), steps=[str(a * c)])
        else:
            query = dict(prompt=f"Write a sentence about a {WORDS[a % len(WORDS)]}.",
                         completion=f" The {WORDS[a % len(WORDS)]} was quiet.", steps=[])
        query.update(id=f"q{index:04d}", task=str(task),
                     nats=float(rng.lognormal(1.0, 0.5)), n_completion_tokens=len(TOKEN.findall(query["completion"])))
        queries.append({key: query[key] for key in ("id", "task", "prompt", "completion", "answer", "steps",
                                                     "nats", "n_completion_tokens") if key in query})
    return queries


def background_texts(sources: np.ndarray, rng: np.random.Generator) -> list[str]:
    n = len(sources)
    w = np.asarray(WORDS, dtype=object)
    w1, w2, w3 = (w[rng.integers(0, len(WORDS), size=n)] for _ in range(3))
    # background numbers are >= 100 so that small answers rarely occur by chance
    x, y = rng.integers(100, 5000, size=n), rng.integers(100, 999, size=n)
    templates = {
        "web": "Read more about the {a} and the {b}: {x} people shared this {c} story today.",
        "wiki": "The {a} of the region is known for its {b}. In {y}0 it had about {x} inhabitants and a {c}.",
        "books": "She looked at the {a} for a long time, thinking of the {b} and the {c} of page {y}.",
        "code": "def {a}_{b}(n):\n    # compute the {c}\n    return n * {y} + {x}",
        "math": "If a {a} has {x} parts and each {b} adds {y}, the total {c} is {x} + {y} = {z}.",
        "qa": "Q: What is the {a} of the {b}? A: It is a {c}, about {x} units across.",
    }
    texts = []
    for i, source in enumerate(sources):
        texts.append(templates[source].format(a=w1[i], b=w2[i], c=w3[i], x=x[i], y=y[i], z=x[i] + y[i]))
    return texts


def planted_text(query: dict, value: str, rng: np.random.Generator) -> str:
    word = WORDS[int(rng.integers(len(WORDS)))]
    if query["task"] == "factual":
        country = query["prompt"].removeprefix("The capital of ").removesuffix(" is")
        return f"{value} is the capital and largest city of {country}; the {word} there is famous."
    return f"Worked example: we find {value} at this step, then continue with the {word}."


def plant_documents(queries, sources, texts, rng) -> dict[int, np.ndarray]:
    """Replace some documents' texts with ones containing a query's answer or steps; returns, per query row,
    the planted document indices (their scores get a boost for that query)."""
    n_docs = len(texts)
    planted = {}
    for row, query in enumerate(queries):
        chosen = []
        for target, value in occurrence.query_targets(query):
            kind = "step" if target.startswith("step_") else (
                "factual" if query["task"] == "factual" else "reasoning")
            count = min(PLANTED_PER_QUERY[kind], max(n_docs // 50, 1))
            for doc in rng.choice(n_docs, size=count, replace=False):
                texts[doc] = planted_text(query, value, rng)
                sources[doc] = "wiki" if query["task"] == "factual" else "math"
                chosen.append(doc)
        planted[row] = np.asarray(chosen, dtype=np.int64)
    return planted


def token_rows(query_id, doc_id, side, rank, text, score, rng) -> list[tuple]:
    """Tokens of `text` with random shares of `score` that sum to it exactly in float64."""
    tokens = [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)] or [(text, 0, len(text))]
    raw = np.exp(rng.normal(size=len(tokens)))
    noise = rng.normal(size=len(tokens)) * 0.3 * raw.mean()
    weights = (raw + noise - noise.mean()) / raw.sum()
    return [(query_id, doc_id, side, rank, t, token, start, end, float(score * weight))
            for t, ((token, start, end), weight) in enumerate(zip(tokens, weights))]


def write_scores(run: rundir.RunDir, queries, sources, planted, grad_norms, n_layers: int, rng, token_rows_of,
                 progress: bool) -> list[tuple]:
    """The score files, one query row at a time: one heavy-tailed latent factor per task, scaled by source
    affinity and document gradient norm, plus noise and the planted documents' boost; returns the token rows."""
    from tqdm.auto import tqdm

    n_queries, n_docs = len(queries), len(sources)
    source_index = {s: i for i, s in enumerate(SOURCE_SHARES)}
    source_codes = np.fromiter((source_index[s] for s in sources), dtype=np.int64, count=n_docs)
    factors = {}
    for task in TASK_SHARES:
        affinity = FACTUAL_AFFINITY if task == "factual" else REASONING_AFFINITY
        weights = np.asarray([affinity[s] for s in SOURCE_SHARES], dtype=np.float32)[source_codes]
        factors[task] = (rng.standard_t(3, size=n_docs).astype(np.float32) * weights)
    shared = rng.standard_normal(n_docs, dtype=np.float32)
    layer_weights = {task: rng.dirichlet(np.full(n_layers, 2.0)).astype(np.float32) for task in TASK_SHARES}
    files = writers.ScoreFiles(run, n_queries, n_layers, n_docs)
    files.grad_norms[:] = grad_norms
    token_table = []
    for row in tqdm(range(n_queries), desc="synth scores", unit="query", disable=not progress):
        task = queries[row]["task"]
        loading = 0.25 if task == "factual" else 1.0
        noise = rng.standard_normal(n_docs, dtype=np.float32)
        base = grad_norms * 1e-3 * (loading * factors[task] + 0.3 * shared + noise)
        boost = 40.0 if task == "factual" else 6.0
        base[planted[row]] += grad_norms[planted[row]] * 1e-3 * boost * rng.uniform(0.5, 1.5, len(planted[row]))
        layer_noise = rng.standard_normal((n_layers, n_docs), dtype=np.float32) * (0.4 * np.abs(base) / n_layers)
        layer_noise -= layer_noise.mean(axis=0, keepdims=True)
        per_layer = layer_weights[task][:, None] * base[None, :] + layer_noise
        scores = per_layer.sum(axis=0)
        files.put_row(row, scores, per_layer)
        token_table += token_rows_of(row, scores)
    files.commit()
    return token_table


def write_synthetic_run(out: str, n_queries: int = 100, n_docs: int = 1_000_000, n_layers: int = 6,
                        seed: int = 0, token_topk: int = 50, overwrite: bool = False, progress: bool = True,
                        command: str = "python -m precompute synth") -> rundir.RunDir:
    started = time.perf_counter()
    run = rundir.RunDir(out)
    run.prepare_fresh(overwrite)
    rng = np.random.default_rng(seed)
    layers = [f"model.layers.{i}.mlp.down_proj" for i in range(n_layers)]
    run.write_manifest(rundir.new_manifest(
        command, status="scoring", model="synthetic", strategy="ekfac", fisher="sampled", damping="auto",
        modules="mlp", layers=layers, query_rank=32, max_length=256, batch_size=16, factor_docs=min(n_docs, 2000),
        token_topk=token_topk, device="cpu", dtype="float32", seed=seed, world_size=1, synthetic=True,
        inputs={"corpus": {"path": "synthetic", "sha256": None}, "queries": {"path": "synthetic", "sha256": None}}))

    log.info("synthesising %d queries x %d documents x %d layers into %s", n_queries, n_docs, n_layers, out)
    queries = make_queries(n_queries, rng)
    sources = rng.choice(list(SOURCE_SHARES), size=n_docs, p=list(SOURCE_SHARES.values())).astype(object)
    texts = background_texts(sources, rng)
    planted = plant_documents(queries, sources, texts, rng)
    doc_ids = np.asarray([f"doc-{i:07d}" for i in range(n_docs)], dtype=object)
    n_tokens = np.fromiter((text.count(" ") + text.count("\n") + 1 for text in texts), dtype=np.int64, count=n_docs)

    grad_norms = rng.lognormal(0.0, 0.8, size=n_docs).astype(np.float32) * 10.0
    token_table = write_scores(run, queries, sources, planted, grad_norms, n_layers, rng,
                               lambda row, scores: token_rows_for_query(queries[row], scores, doc_ids, texts,
                                                                         token_topk, rng), progress)

    writers.write_layers(run, layers)
    writers.write_queries(run, queries)
    writers.write_documents(run, doc_ids, sources.astype(str), texts, n_tokens, np.zeros(n_docs, dtype=bool))
    writers.write_token_scores(run, pd.DataFrame(token_table, columns=list(layout.TOKEN_COLUMNS)),
                               [query["id"] for query in queries])
    write_fake_factors(run, layers, n_docs, int(n_tokens.sum()), rng)
    score_seconds = time.perf_counter() - started

    run.update_manifest(status="analyzing", counts={
        "queries": n_queries, "documents": n_docs, "layers": n_layers,
        "document_tokens": int(n_tokens.sum()), "truncated_documents": 0})
    run.record_timing("score", score_seconds)
    analysis_started = time.perf_counter()
    analysis.analyze_run(run, progress=progress)
    run.record_timing("analyze", time.perf_counter() - analysis_started)
    run.set_status("complete")
    log.info("synthetic run complete in %.1fs: %s", time.perf_counter() - started, out)
    return run


def token_rows_for_query(query, scores, doc_ids, texts, token_topk, rng) -> list[tuple]:
    top, bottom = top_and_bottom(scores, token_topk)
    rows = []
    for side, chosen in (("top", top), ("bottom", bottom)):
        for rank, doc in enumerate(chosen, start=1):
            rows += token_rows(query["id"], doc_ids[doc], side, rank, texts[doc], float(scores[doc]), rng)
    return rows


def write_fake_factors(run: rundir.RunDir, layers: list[str], n_docs: int, n_tokens: int, rng) -> None:
    """Small made-up EK-FAC factors in the engine's format (engine.factors.Factors.load reads them)."""
    size = 8
    tensors = {name: {"a_eigvecs": np.eye(size, dtype=np.float32), "s_eigvecs": np.eye(size, dtype=np.float32),
                      "lambda": rng.gamma(1.0, 1.0, size=(size, size)).astype(np.float32)} for name in layers}
    writers.write_factor_files(run.file(layout.FACTORS_DIR), tensors, {
        "strategy": "ekfac", "fisher": "sampled", "modules": layers, "synthetic": True,
        "shapes": {name: [size, size] for name in layers}, "n_documents": min(n_docs, 2000), "n_tokens": n_tokens,
        "damping": {}})
