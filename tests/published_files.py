"""Small files in the format of Ruis et al.'s published influence data (docs/published-data.md), for tests.

The real files live in ../shared/ruis/ next to the repository when present (`REAL_FILES`); CI clones the
repository alone, so tests that need them skip there."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = ROOT.parent / "shared" / "ruis"
REAL_FILES = {size: REAL_DIR / f"answer_and_slope_pretraining_data_prepared_{size}.json" for size in ("7B", "35B")}
CORPUS = 5_000_000
SOURCES = ["arxiv_markdown", "code", "math_and_trivia", "multilingual", "stackexchange", "webdata"]


def real_files_present() -> bool:
    return all(path.exists() for path in REAL_FILES.values())


def layout_prompts(model: str, rng: np.random.Generator) -> tuple[list[str], list[dict]]:
    """100 prompts in the files' order (40 factual, 20 arithmetic or linear equations, 20 slopes, 10 + 10
    controls) and, per prompt, the numbers it was built from."""
    prompts, numbers = [], []
    for i in range(40):
        prompts.append(f"Which city is number {i} on the list?" if i % 2 or model == "7B" else
                       f"What is fact {i} about the {model} world?")
        numbers.append({})
    for _ in range(20):
        a, b, c = (int(v) for v in rng.integers(1, 20, size=3))
        if model == "7B":
            prompts.append(f"Calculate the answer: ({a} + {b}) * {c}\n\nThink step-by-step.")
        else:
            prompts.append(f"Solve for x: {a}x + {a * c} = {a * c + a * b}\n\nThink step-by-step.")
        numbers.append({"a": a, "b": b, "c": c})
    for i in range(20):
        x1, y1, dx, slope = 10 + i, int(rng.integers(0, 50)), int(rng.integers(1, 5)), int(rng.integers(-6, 7))
        prompts.append(f"What is the slope of the line passing through the points ({x1}, {y1}) and "
                       f"({x1 + dx}, {y1 + slope * dx})?\n\nThink step-by-step.")
        numbers.append({"dy": slope * dx, "dx": dx, "slope": slope})
    prompts += [f"In the story, the tower is {i} metres tall.\nHow tall is the tower?" for i in range(10)]
    prompts += [f"Can you repeat the number between brackets ({i})?\n\nThink step-by-step." for i in range(10)]
    numbers += [{}] * 20
    return prompts, numbers


def make_published(model: str = "7B", n_docs: int = 8, seed: int = 0) -> tuple[dict, dict]:
    """(file content, ground truth): scores with a per-document norm (cos = dot / norm) and ranks that order
    a make-believe 5M-document corpus consistently with the scores."""
    rng = np.random.default_rng(seed)
    prompts, numbers = layout_prompts(model, np.random.default_rng(1))   # same problems in both models
    norms = rng.uniform(1e3, 2e4, size=n_docs)
    dot = rng.normal(0.0, 1e-5, size=(100, n_docs))
    cos = dot / norms

    def corpus_rank(values, scale):       # 0-based rank among CORPUS normal scores: the most positive is 0
        tail = np.array([0.5 * math.erfc(v / (scale * math.sqrt(2))) for v in values.ravel()])
        return np.minimum((tail * CORPUS).astype(np.int64), CORPUS - 1).reshape(values.shape)

    content = {
        "model": model,
        # the same documents in every model's file, as in the real files
        "training_ids": [int(v) for v in np.random.default_rng(7).choice(CORPUS, size=n_docs, replace=False)],
        "test_ids": list(range(100)),
        "training_sequences": [f"Document {d} of source {SOURCES[d % len(SOURCES)]}: the value is {d * 7}."
                               for d in range(n_docs)],
        "training_sources": [SOURCES[d % len(SOURCES)] for d in range(n_docs)],
        "test_sequences": [f"Prompt:\n{p}\n\nCompletion:\nAnswer {i}." for i, p in enumerate(prompts)],
        "prompts": prompts,
        "completions": [f"Answer {i}." for i in range(100)],
        "influences_dot": dot.tolist(),
        "influences_cos": cos.tolist(),
        "ranks": corpus_rank(dot, 1e-5).tolist(),
        "ranks_normed": corpus_rank(cos, float(np.std(cos))).tolist(),
    }
    return content, {"norms": norms, "numbers": numbers}


def write_published(path: Path, model: str = "7B", n_docs: int = 8, seed: int = 0, **changes) -> Path:
    """Write a synthetic published file; `changes` replace fields (to make bad inputs)."""
    content, _ = make_published(model, n_docs, seed)
    content.update(changes)
    path.write_text(json.dumps(content))
    return path
