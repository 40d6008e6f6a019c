"""Which documents each tail-patch trains on: every ranking method's top-k and bottom-k per query, the random
k-sets, and the queries validated. numpy only (no torch).

Ranking methods: the run's own scores (named by its strategy, e.g. `ekfac`), the scores of other runs of the
same model and corpus (`--strategy-runs`, e.g. an identity run), and BM25 between the query text and each
document (top-k only: most documents share no term with a query, so BM25's bottom is an arbitrary tie).
Random k-sets are drawn once per run (seeded) and applied to every query; their token totals are matched (within
TOKEN_TOLERANCE) to the mean token total of the run's own top-k sets, so "beats random" is not a length effect.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from precompute import rundir
from precompute.analysis.ranking import top_and_bottom
from precompute.analysis.bm25_ranking import BM25_SETTINGS, BM25Ranking, bm25s_version, query_text
from precompute.pipeline.flag_values import keyword_or_number
from precompute.rundir.errors import UserInputError

BM25 = "bm25"


@dataclass
class MethodSets:
    """One ranking method's document sets: sets[query id][side] = column indices in the validated run."""
    name: str
    source: str                                   # run directory, or "bm25"
    fingerprint: str = ""                         # what the sets depend on: the source's scores.npy sha256, or
    sets: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)     # the BM25 settings

    @property
    def tag(self) -> str:
        """Names this method's stored work (precompute.validation.store)."""
        from precompute.validation.store import method_tag
        return method_tag(self.name, self.fingerprint)


def open_run(path: str, what: str = "run") -> rundir.Run:
    """A complete run directory, or one clear UserInputError line (status, missing files...)."""
    if not os.path.isdir(path):
        raise UserInputError(f"{path}: {what} directory not found")
    if not rundir.RunDir(path).exists():
        raise UserInputError(f"{path}: no {rundir.MANIFEST}; not a run directory")
    status = rundir.RunDir(path).status()
    if status != rundir.COMPLETE:
        raise UserInputError(f"{path}: status {status!r}: validate needs a complete run (let the run finish, or "
                             "resume it with the command that made it)")
    try:
        return rundir.read_run(path)
    except rundir.RunError as error:
        raise UserInputError(f"{path}: {str(error).rstrip('.')}") from None


def model_key(run: rundir.Run) -> str:
    """The run's model as recorded (absolute path when it was a path that existed)."""
    fit_key = run.manifest.get("fit_key") or {}
    return str(fit_key.get("model") or run.manifest.get("model") or "")


def select_queries(n_queries: int, spec: str, seed: int) -> np.ndarray:
    """Rows validated: all, or a seeded sample of N rows (in row order)."""
    n = keyword_or_number(spec, "--queries", "all", int)
    if n == "all":
        return np.arange(n_queries)
    if n > n_queries:
        raise UserInputError(f"--queries {n} is more than the run's {n_queries} queries")
    return np.sort(np.random.default_rng([seed, 1]).choice(n_queries, size=n, replace=False))


TOKEN_TOLERANCE = 0.05      # token-matched random sets: total tokens within 5% of the target
MATCH_SWAPS = 20_000        # swap proposals per set before giving up on the tolerance


def random_sets(n_documents: int, k: int, draws: int, seed: int, tokens: np.ndarray | None = None,
                target: float | None = None) -> np.ndarray:
    """[draws, k] document columns: draw r is k distinct documents, seeded by (seed, r). With `tokens` (per
    document) and `target` (total tokens, e.g. the mean of the ranked top-k sets), each draw is then matched:
    token_matched moves its total within TOKEN_TOLERANCE of the target."""
    if not draws:
        return np.zeros((0, k), dtype=np.int64)
    sets = []
    for r in range(draws):
        rng = np.random.default_rng([seed, 2, r])
        chosen = rng.choice(n_documents, size=k, replace=False)
        if tokens is not None and target is not None and np.isfinite(target):
            chosen = token_matched(chosen, np.asarray(tokens, dtype=np.float64), float(target), rng)
        sets.append(np.sort(chosen))
    return np.stack(sets)


def token_matched(chosen: np.ndarray, tokens: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """A random set moved towards `target` total tokens by random swaps (one member out, one random non-member
    in), each kept only when it brings the total closer; stops within TOKEN_TOLERANCE of the target (or after
    MATCH_SWAPS proposals, keeping the closest set: a target beyond the corpus's reach is not met)."""
    chosen = chosen.copy()
    member = np.zeros(len(tokens), dtype=bool)
    member[chosen] = True
    total = tokens[chosen].sum()
    for _ in range(MATCH_SWAPS):
        if abs(total - target) <= TOKEN_TOLERANCE * target:
            break
        position, candidate = int(rng.integers(len(chosen))), int(rng.integers(len(tokens)))
        if member[candidate]:
            continue
        moved = total - tokens[chosen[position]] + tokens[candidate]
        if abs(moved - target) < abs(total - target):
            member[chosen[position]], member[candidate] = False, True
            chosen[position], total = candidate, moved
    return chosen


def ranked_set_tokens(method: MethodSets, tokens: np.ndarray) -> float:
    """Mean total tokens of a ranking method's top-k sets over the queries it has (NaN if none)."""
    totals = [float(np.asarray(tokens)[sets["top"]].sum()) for sets in method.sets.values() if "top" in sets]
    return float(np.mean(totals)) if totals else float("nan")


def score_sets(name: str, source: rundir.Run, query_ids: list[str], k: int,
               columns: np.ndarray | None = None) -> MethodSets:
    """Top-k and bottom-k of `source`'s scores for each query id it has; `columns` maps the source's columns
    to the validated run's (None: same order)."""
    method = MethodSets(name, str(source.path), rundir.sha256_of_file(str(source.path / rundir.SCORES)))
    rows = dict(zip(source.queries["id"], range(source.n_queries)))
    for query_id in query_ids:
        if query_id not in rows:
            continue
        top, bottom = top_and_bottom(np.asarray(source.scores[rows[query_id]], dtype=np.float32), k)
        if columns is not None:
            top, bottom = columns[top], columns[bottom]
        method.sets[query_id] = {"top": top, "bottom": bottom}
    return method


def bm25_sets(run: rundir.Run, texts: list[str], query_ids: list[str], k: int) -> MethodSets:
    ranking = BM25Ranking(texts)
    method = MethodSets(BM25, BM25, f"bm25s {bm25s_version()} {BM25_SETTINGS}")
    for query_id in query_ids:
        query = run.queries.iloc[run.query_row(query_id)].to_dict()
        method.sets[query_id] = {"top": ranking.top(query_text(query), k)}
    return method


def method_name(run: rundir.Run, taken: set[str]) -> str:
    name = str(run.manifest.get("strategy") or os.path.basename(os.path.normpath(run.path)))
    if name in taken or name == BM25:
        name = f"{name}:{os.path.basename(os.path.normpath(run.path))}"
    return name


def strategy_run_sets(run: rundir.Run, path: str, query_ids: list[str], k: int, taken: set[str]) -> MethodSets:
    """Another run of the same model and corpus: its own top/bottom k, mapped onto this run's documents."""
    other = open_run(path, "--strategy-runs")
    if model_key(other) != model_key(run):
        raise UserInputError(f"{path}: model {model_key(other)!r} differs from the validated run's model "
                             f"{model_key(run)!r} (--strategy-runs need the same model and corpus)")
    if other.n_documents != run.n_documents or set(other.doc_ids) != set(run.doc_ids):
        raise UserInputError(f"{path}: its {other.n_documents} documents are not the validated run's "
                             f"{run.n_documents} documents (--strategy-runs need the same corpus)")
    columns = None if np.array_equal(other.doc_ids, run.doc_ids) else \
        run.doc_positions.get_indexer(other.doc_ids).astype(np.int64)
    shared = [q for q in query_ids if q in set(other.queries["id"])]
    if not shared:
        raise UserInputError(f"{path}: shares no query id with the validated run")
    return score_sets(method_name(other, taken), other, shared, k, columns)
