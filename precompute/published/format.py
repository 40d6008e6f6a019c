"""Read and check the published influence files of Ruis et al. (2024) and turn their queries into records.

One file per model (Command R 7B, 35B; docs/published-data.md): 80 pretraining documents (`training_ids`,
`training_sequences`, `training_sources`), 100 queries (`test_ids`, `prompts`, `completions`,
`test_sequences`), and four [queries][documents] matrices: `influences_dot` (raw EK-FAC influence),
`influences_cos` (normalised influence), `ranks` and `ranks_normed` (each document's 0-based rank among all
~5M documents the paper scored, by the raw and the normalised score).

Every problem is one UserInputError naming the file and the field (exit code 2). numpy only, no torch.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from precompute.rundir.errors import UserInputError

DOCUMENT_FIELDS = ("training_ids", "training_sequences", "training_sources")
QUERY_FIELDS = ("test_ids", "prompts", "completions")
MATRIX_FIELDS = ("influences_dot", "influences_cos", "ranks", "ranks_normed")
# the files' query order (their README): 40 factual, 20 arithmetic, 20 slope, 10 + 10 controls
LAYOUT = (("factual", 40), ("arithmetic", 20), ("slope", 20), ("factual_control", 10), ("reasoning_control", 10))
ARITHMETIC = re.compile(r"Calculate the answer: \((\d+) ([+-]) (\d+)\) \* (\d+)")
SLOPE = re.compile(r"slope of the line passing through the points \((-?\d+), (-?\d+)\) and \((-?\d+), (-?\d+)\)")
LINEAR = re.compile(r"Solve for x: (\d+)x \+ (\d+) = (\d+)")
REASONING_PATTERNS = {"arithmetic": ARITHMETIC, "slope": SLOPE, "linear_equation": LINEAR}


@dataclass
class Published:
    path: str
    sha256: str
    model: str
    doc_ids: list[int]
    texts: list[str]
    sources: list[str]
    test_ids: list[int]
    prompts: list[str]
    completions: list[str]
    dot: np.ndarray             # float64 [Q, D]
    cos: np.ndarray             # float64 [Q, D]
    ranks: np.ndarray           # int64 [Q, D], 0 = the most positive raw influence of the ~5M
    ranks_normed: np.ndarray    # int64 [Q, D], the same by normalised influence

    @property
    def n_queries(self) -> int:
        return len(self.prompts)

    @property
    def n_documents(self) -> int:
        return len(self.texts)


def load_json(path: str) -> tuple[dict, str]:
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: published file not found")
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UserInputError(f"{path}: undecodable bytes (not UTF-8) at byte {error.start}") from None
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path}: invalid JSON ({error.msg} at line {error.lineno}, column {error.colno})") \
            from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object with the fields {', '.join(MATRIX_FIELDS)}, ...; "
                             f"got {type(data).__name__}")
    missing = [name for name in DOCUMENT_FIELDS + QUERY_FIELDS + MATRIX_FIELDS if name not in data]
    if missing:
        raise UserInputError(f"{path}: not a published influence file: missing field '{missing[0]}'"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return data, hashlib.sha256(raw).hexdigest()


def typed_list(data: dict, name: str, kind: type, path: str, length: int | None = None) -> list:
    values = data[name]
    if not isinstance(values, list):
        raise UserInputError(f"{path}: field '{name}' must be a list, got {type(values).__name__}")
    if length is not None and len(values) != length:
        raise UserInputError(f"{path}: field '{name}' has {len(values)} entries, expected {length} "
                             f"(one per {'document' if name.startswith('training') else 'query'})")
    for index, value in enumerate(values):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UserInputError(f"{path}: field '{name}' entry {index}: expected {kind.__name__}, "
                                 f"got {type(value).__name__}")
    return values


def matrix(data: dict, name: str, shape: tuple[int, int], path: str, integer: bool) -> np.ndarray:
    rows = data[name]
    if not isinstance(rows, list) or len(rows) != shape[0]:
        count = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise UserInputError(f"{path}: field '{name}' has {count} rows, expected {shape[0]} (one per query)")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != shape[1]:
            count = len(row) if isinstance(row, list) else type(row).__name__
            raise UserInputError(f"{path}: field '{name}' row {index} has {count} values, expected {shape[1]} "
                                 "(one per document)")
        for column, value in enumerate(row):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise UserInputError(f"{path}: field '{name}' row {index} column {column}: {value!r} is not a "
                                     "finite number")
            if integer and (value < 0 or value != int(value)):
                raise UserInputError(f"{path}: field '{name}' row {index} column {column}: {value!r} is not a "
                                     "rank (a non-negative integer)")
    return np.asarray(rows, dtype=np.int64 if integer else np.float64)


def read_published(path: str) -> Published:
    data, digest = load_json(path)
    doc_ids = typed_list(data, "training_ids", int, path)
    n_docs = len(doc_ids)
    test_ids = typed_list(data, "test_ids", int, path)
    n_queries = len(test_ids)
    if not n_docs or not n_queries:
        raise UserInputError(f"{path}: the file has {n_queries} queries and {n_docs} documents; need at least one")
    texts = typed_list(data, "training_sequences", str, path, n_docs)
    sources = typed_list(data, "training_sources", str, path, n_docs)
    prompts = typed_list(data, "prompts", str, path, n_queries)
    completions = typed_list(data, "completions", str, path, n_queries)
    for index, completion in enumerate(completions):
        if not completion.strip():
            raise UserInputError(f"{path}: field 'completions' entry {index} is empty")
    shape = (n_queries, n_docs)
    model = data.get("model")
    return Published(
        path=path, sha256=digest, model=str(model) if model is not None else os.path.basename(path),
        doc_ids=doc_ids, texts=texts, sources=sources, test_ids=test_ids, prompts=prompts, completions=completions,
        dot=matrix(data, "influences_dot", shape, path, integer=False),
        cos=matrix(data, "influences_cos", shape, path, integer=False),
        ranks=matrix(data, "ranks", shape, path, integer=True),
        ranks_normed=matrix(data, "ranks_normed", shape, path, integer=True))


# ---------------------------------------------------------------- tasks, answers, ids

def reasoning_kind(prompt: str) -> str | None:
    """'arithmetic', 'slope' or 'linear_equation' when the prompt is that kind of problem, else None."""
    for kind, pattern in REASONING_PATTERNS.items():
        if pattern.search(prompt):
            return kind
    return None


def task_labels(prompts: list[str]) -> tuple[list[str], list[str]]:
    """Task per query and notes on how the labels were checked.

    100 queries: the files' block order (LAYOUT); a reasoning block is named after the problem its prompts
    pose (the 35B file's second block is linear equations, not arithmetic). Other counts: a prompt's problem
    kind, else 'unlabelled'."""
    notes = []
    if len(prompts) != sum(size for _, size in LAYOUT):
        notes.append(f"{len(prompts)} queries, not the published 100: tasks from the prompts' problem kind only")
        return [reasoning_kind(p) or "unlabelled" for p in prompts], notes
    tasks, start = [], 0
    for name, size in LAYOUT:
        block = prompts[start:start + size]
        kinds = [reasoning_kind(p) for p in block]
        if name in ("arithmetic", "slope"):
            found = {k for k in kinds if k}
            label = found.pop() if len(found) == 1 and None not in kinds else name
            agree = sum(k == label for k in kinds)
            notes.append(f"queries {start}-{start + size - 1} (README: {name}): {agree}/{size} prompts are "
                         f"{label.replace('_', ' ')} problems; labelled {label}")
        else:
            label = name
            stray = [start + i for i, k in enumerate(kinds) if k]
            notes.append(f"queries {start}-{start + size - 1}: {name}"
                         + (f"; prompts {stray} are arithmetic, slope or linear-equation problems" if stray else
                            "; none is an arithmetic, slope or linear-equation problem"))
        tasks += [label] * size
        start += size
    return tasks, notes


def integral(value: Fraction) -> str | None:
    return str(value.numerator) if value.denominator == 1 else None


def answer_and_steps(task: str, prompt: str) -> dict:
    """The answer and intermediate results of a reasoning problem, computed from its prompt (as in
    data/queries.jsonl: the last step is the answer). Empty for other tasks and for non-integer answers."""
    match = REASONING_PATTERNS[task].search(prompt) if task in REASONING_PATTERNS else None
    if match is None:
        return {}
    numbers = [int(group) for group in match.groups() if group not in "+-"]
    if task == "arithmetic":
        a, b, c = numbers
        first = a + b if match.group(2) == "+" else a - b
        steps = [str(first), str(first * c)]
    elif task == "slope":
        x1, y1, x2, y2 = numbers
        if x1 == x2:
            return {}
        slope = integral(Fraction(y2 - y1, x2 - x1))
        steps = [str(y2 - y1), str(x2 - x1), slope]
    else:
        a, b, c = numbers
        x = integral(Fraction(c - b, a)) if a else None
        steps = [str(c - b), x]
    if steps[-1] is None:
        return {}
    return {"answer": steps[-1], "steps": steps}


def normalised_prompt(prompt: str) -> str:
    """What makes two prompts the same question: text with whitespace collapsed, case folded."""
    return " ".join(prompt.split()).casefold()


def query_ids(tasks: list[str], prompts: list[str]) -> list[str]:
    """`<task>-<6 hex of the normalised prompt>`: the same question gets the same id in the 7B and 35B files,
    so runs imported from both line up by id (compare page); a repeated prompt gets a suffix."""
    ids, seen = [], {}
    for task, prompt in zip(tasks, prompts):
        base = f"{task}-{hashlib.sha1(normalised_prompt(prompt).encode('utf-8')).hexdigest()[:6]}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def document_ids(training_ids: list[int]) -> list[str]:
    """The files' document ids as strings; a repeated id (the files list 4 documents twice) gets `-2`."""
    ids, seen = [], {}
    for value in training_ids:
        base = str(value)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def query_records(published: Published) -> tuple[list[dict], list[str]]:
    """queries.jsonl rows (score-row order) and the task-check notes. `nats` is unknown (NaN): no model here."""
    tasks, notes = task_labels(published.prompts)
    ids = query_ids(tasks, published.prompts)
    rows = []
    for index, (query_id, task) in enumerate(zip(ids, tasks)):
        row = {"id": query_id, "task": task, "prompt": published.prompts[index],
               "completion": published.completions[index], "steps": []}     # as synth: a list on every query
        row.update(answer_and_steps(task, published.prompts[index]))
        row.update({"nats": math.nan, "published_row": index, "test_id": published.test_ids[index],
                    "published_model": published.model})
        rows.append(row)
    return rows, notes
