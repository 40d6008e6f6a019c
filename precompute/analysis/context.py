"""The one object every table and findings producer receives: the run's inputs plus everything derived from them
that more than one table needs, each computed once on first use (per-query rankings in one pass over the score
rows, the Pearson matrix, corpus-wide answer matches, categorical document columns)."""
from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute.analysis import correctness, occurrence, ranking, registry, statistics
from precompute.analysis.inputs import AnalysisInputs
from precompute.analysis.search import CorpusSearch

FACTUAL_TASK = "factual"
TOP_K = 100                   # documents per side in top_docs
FINDINGS_K = 500              # top-k depth of the occurrence and ground-truth findings
MAX_CATEGORIES = 50           # a metadata column with more distinct values is not broken down
CORRELATION_CHUNK = 1 << 16   # document columns per float64 block in the Pearson pass


def is_control_task(task: str) -> bool:
    return task.endswith("_control")


def is_reasoning_task(task: str) -> bool:
    return task != FACTUAL_TASK and not is_control_task(task)


def stacked_frame(parts: list[dict], columns: list[str]) -> pd.DataFrame:
    """One DataFrame from many {column: array or scalar} blocks (a scalar repeats over its block's rows);
    one concatenation per column instead of one DataFrame per block."""
    if not parts:
        return pd.DataFrame(columns=columns)
    lengths = [max(len(v) for v in part.values() if isinstance(v, np.ndarray)) for part in parts]
    data = {}
    for column in columns:
        pieces = [part[column] if isinstance(part[column], np.ndarray) else np.full(n, part[column],
                  dtype=object if isinstance(part[column], str) else None) for part, n in zip(parts, lengths)]
        data[column] = np.concatenate(pieces)
    return pd.DataFrame(data)


class RowView:
    """One query's score row with its rankings, each computed on first use (ties by document index)."""

    def __init__(self, index: int, values: np.ndarray):
        self.index = index
        self.values = values

    @cached_property
    def descending(self) -> np.ndarray:
        return ranking.top_columns(self.values, len(self.values))

    @cached_property
    def sorted_values(self) -> np.ndarray:
        """The row's values, highest first."""
        return self.values[self.descending]

    @cached_property
    def ascending(self) -> np.ndarray:
        """Lowest first, ties by index: the reversed descending order when the row has no ties (one sort)."""
        ordered = self.sorted_values
        if len(ordered) and not np.isnan(ordered[-1]) and np.all(ordered[1:] != ordered[:-1]):
            return self.descending[::-1].copy()
        return ranking.top_columns(-self.values, len(self.values))

    @cached_property
    def rank(self) -> np.ndarray:
        """rank[d] = 0-based position of document d in the descending order."""
        rank = np.empty(len(self.values), dtype=np.int64)
        rank[self.descending] = np.arange(len(self.values))
        return rank


def pearson_matrix(scores: np.ndarray, chunk: int = CORRELATION_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between every pair of score rows (over documents) and its two-sided p-value; rows with zero
    variance give NaN. Two float64 passes over column chunks: row means, then centred cross products."""
    from scipy import special
    n_rows, n_cols = scores.shape
    sums = np.zeros(n_rows, dtype=np.float64)
    for start in range(0, n_cols, chunk):
        sums += np.asarray(scores[:, start:start + chunk], dtype=np.float64).sum(axis=1)
    means = sums / max(n_cols, 1)
    cross = np.zeros((n_rows, n_rows), dtype=np.float64)
    for start in range(0, n_cols, chunk):
        block = np.asarray(scores[:, start:start + chunk], dtype=np.float64) - means[:, None]
        cross += block @ block.T
    std = np.sqrt(np.diag(cross))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cross / np.outer(std, std)
    r[(std == 0)[:, None] | (std == 0)[None, :]] = np.nan
    r = np.clip(r, -1.0, 1.0)
    # P(|T| >= |t|) for T ~ Student t with n-2 dof equals the regularised incomplete beta I_{1-r²}((n-2)/2, 1/2)
    p = (special.betainc((n_cols - 2) / 2.0, 0.5, np.clip(1.0 - np.square(r), 0.0, 1.0)) if n_cols >= 3
         else np.full_like(r, np.nan))
    return r, p


def reasoning_and_factual_groups(task_rows: dict[str, np.ndarray], usable: np.ndarray) -> list[np.ndarray] | None:
    """The usable rows of each reasoning task with at least 2 of them, then the usable factual rows (the groups a
    reasoning-vs-factual finding compares); None when fewer than 2 factual rows or no reasoning task remain."""
    factual = task_rows.get(FACTUAL_TASK, np.zeros(0, np.int64))
    factual = factual[usable[factual]]
    reasoning = [rows[usable[rows]] for task, rows in task_rows.items() if is_reasoning_task(task)]
    reasoning = [rows for rows in reasoning if len(rows) >= 2]
    return reasoning + [factual] if len(factual) >= 2 and reasoning else None


class AnalysisContext:
    def __init__(self, inputs: AnalysisInputs, top_k: int = TOP_K, seed: int = statistics.DEFAULT_SEED,
                 n_resamples: int = statistics.N_RESAMPLES, progress: bool = True, findings_k: int = FINDINGS_K):
        self.inputs = inputs
        self.top_k = top_k
        self.seed = seed
        self.n_resamples = n_resamples
        self.progress = progress
        self.n_queries, self.n_docs = inputs.scores.shape
        self.queries = inputs.queries
        self.query_ids = np.asarray([str(q["id"]) for q in inputs.queries], dtype=object)
        self.tasks = np.asarray([str(q["task"]) for q in inputs.queries], dtype=object)
        self.findings_k = min(findings_k, self.n_docs)
        self._shared: dict = {}

    def shared(self, key: str, compute):
        """A value several tables use (e.g. a table another table summarises): compute(ctx) once, then reuse."""
        if key not in self._shared:
            self._shared[key] = compute(self)
        return self._shared[key]

    # ------------------------------------------------------------ queries
    @cached_property
    def task_rows(self) -> dict[str, np.ndarray]:
        """Score rows of each task, tasks in order of first appearance."""
        return {task: np.flatnonzero(self.tasks == task) for task in dict.fromkeys(self.tasks)}

    @cached_property
    def reasoning_tasks(self) -> list[str]:
        return [task for task in self.task_rows if is_reasoning_task(task)]

    def reasoning_and_factual(self, usable: np.ndarray) -> list[np.ndarray] | None:
        """reasoning_and_factual_groups of this run's tasks."""
        return reasoning_and_factual_groups(self.task_rows, usable)

    @cached_property
    def nats(self) -> np.ndarray:
        values = [q.get("nats") for q in self.queries]
        return np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)

    @cached_property
    def low_information(self) -> np.ndarray:
        return ranking.low_information(self.nats)

    @cached_property
    def correct(self) -> np.ndarray:
        return np.asarray([correctness.is_correct(q) for q in self.queries], dtype=object)

    @cached_property
    def targets(self) -> dict[str, list[list[tuple[str, str]]]]:
        """basis -> per query row, its (target, value) pairs (occurrence.query_targets)."""
        return {basis: [occurrence.query_targets(q, basis) for q in self.queries] for basis in occurrence.BASES}

    @cached_property
    def context_terms(self) -> list[list[str]]:
        return [occurrence.context_terms(q) for q in self.queries]

    def rng(self, name: str) -> np.random.Generator:
        return statistics.finding_seed(self.seed, name)

    # ------------------------------------------------------------ documents
    @cached_property
    def search(self) -> CorpusSearch:
        return CorpusSearch(self.inputs.doc_texts)

    @cached_property
    def categorical(self) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Low-cardinality document columns: name -> (codes per document, category names). `source` always;
        every other metadata column with 2..MAX_CATEGORIES values; for a column with `family:detail` values
        also `<column>_family` (the part before the first colon)."""
        columns = {}
        documents = self.inputs.documents
        for name in documents.columns:
            if name == "id":
                continue
            values = documents[name].astype(str).fillna("")
            candidates = {name: values}
            if values.str.contains(":", regex=False).any():
                candidates[f"{name}_family"] = values.str.split(":", n=1).str[0]
            for column, series in candidates.items():
                codes, names = pd.factorize(series, sort=True)
                if column == "source" or 2 <= len(names) <= MAX_CATEGORIES:
                    columns[column] = (codes.astype(np.int64), [str(n) for n in names])
        return columns

    # ------------------------------------------------------------ shared computations
    @cached_property
    def pearson(self) -> tuple[np.ndarray, np.ndarray]:
        return pearson_matrix(self.inputs.scores)

    @cached_property
    def rows(self) -> dict[str, list]:
        """name -> one value per query row, from every registered row statistic, in one pass over the rows."""
        collectors = registry.registered_row_statistics()
        collected = {spec.name: [] for spec in collectors}
        for index in tqdm(range(self.n_queries), desc="analyze", unit="query", disable=not self.progress):
            row = RowView(index, np.asarray(self.inputs.scores[index], dtype=np.float32))
            for spec in collectors:
                collected[spec.name].append(spec.collect(self, row))
        return collected
