"""The paper's analyses (Ruis et al.) on a run directory's scores; numpy, pandas and scipy only (no torch).

Every table is documented in docs/run-directory.md. Memory stays bounded for large runs: scores are read as
memory maps, Pearson correlations are accumulated over column chunks, everything else goes one query row at a
time (one argsort per row serves top/bottom documents, magnitudes, power laws and source multipliers).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import special
from tqdm.auto import tqdm

from precompute import occurrence, rundir

FACTUAL_TASK = "factual"
TOP_K = 100                                   # documents per side in top_docs
OCCURRENCE_KS = (50, 100, 500)                # top-k depths for answer / step occurrence
FINDINGS_K = 500                              # depth used for the answer rates in findings.json
POWER_LAW_N = 500                             # top positive scores used for the power-law fit
PERCENTILES = np.round(np.geomspace(1e-3, 100.0, 26), 6)   # magnitude grid, 5 points per decade
CORRELATION_CHUNK = 1 << 16                   # document columns per float64 block in the Pearson pass


def is_control_task(task: str) -> bool:
    return task.endswith("_control")


def is_reasoning_task(task: str) -> bool:
    return task != FACTUAL_TASK and not is_control_task(task)


def source_multiplier_ks(n_documents: int) -> list[int]:
    """k = 50, 500, 5000, ... below the corpus size, plus the corpus size itself."""
    ks, k = [], 50
    while k < n_documents:
        ks.append(k)
        k *= 10
    return ks + [n_documents]


# ---------------------------------------------------------------- Pearson correlations

def pearson_p_values(r: np.ndarray, n: int) -> np.ndarray:
    """Two-sided p-value of a Pearson r over n samples: P(|T| ≥ |t|), T ~ Student t with n−2 dof,
    which equals the regularised incomplete beta I_{1−r²}((n−2)/2, 1/2)."""
    if n < 3:
        return np.full_like(r, np.nan, dtype=np.float64)
    x = np.clip(1.0 - np.square(r), 0.0, 1.0)
    return special.betainc((n - 2) / 2.0, 0.5, x)


def pearson_matrix(scores: np.ndarray, chunk: int = CORRELATION_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between every pair of score rows (over documents) and its p-value; rows with zero variance
    give NaN. Two float64 passes over column chunks: row means, then centred cross products."""
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
    return r, pearson_p_values(r, n_cols)


# ---------------------------------------------------------------- answer / step occurrence

def contains_value(texts: list[str], value: str) -> np.ndarray:
    """Mask over texts: does `value` occur as a whole token (precompute.occurrence's rule)."""
    pattern = occurrence.value_pattern(value)
    return np.fromiter((pattern.search(text) is not None for text in texts), dtype=bool, count=len(texts))


def in_context_mask(texts: list[str], answer: str, context: list[str]) -> np.ndarray:
    """Mask over texts: the answer occurs in one line or sentence with every context term of the query."""
    return np.fromiter((occurrence.answer_in_context(text, answer, context) for text in texts), dtype=bool,
                       count=len(texts))


# ---------------------------------------------------------------- per-row summaries

def magnitude_curve(magnitudes_desc: np.ndarray, percentiles: np.ndarray = PERCENTILES):
    """Cumulative influence of the top p% of one sign's scores (by magnitude) and its share of that sign's
    total; the top p% holds ceil(p/100 · n) documents (at least one when n > 0)."""
    n = len(magnitudes_desc)
    cumsum = np.concatenate([[0.0], np.cumsum(magnitudes_desc, dtype=np.float64)])
    counts = np.clip(np.ceil(percentiles / 100.0 * n - 1e-9).astype(np.int64), min(n, 1), n)
    cumulative = cumsum[counts]
    total = cumsum[-1]
    relative = cumulative / total if total > 0 else np.full(len(percentiles), np.nan)
    return cumulative, relative


def power_law_fit(scores_desc: np.ndarray) -> tuple[float, float, float, int]:
    """Least-squares fit of log(score) = intercept + slope · log(rank) over positive scores in descending
    order (rank 1 = largest); returns slope, intercept, r², number of points."""
    values = np.asarray(scores_desc, dtype=np.float64)
    values = values[values > 0]
    n = len(values)
    if n < 2:
        return math.nan, math.nan, math.nan, n
    x = np.log(np.arange(1, n + 1, dtype=np.float64))
    y = np.log(values)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    spread = np.sum(np.square(y - y.mean()))
    r2 = 1.0 - np.sum(np.square(residual)) / spread if spread > 0 else 1.0
    return float(slope), float(intercept), float(r2), n


# ---------------------------------------------------------------- the whole analysis

@dataclass
class AnalysisInputs:
    scores: np.ndarray                  # [Q, D] (may be a memmap)
    layer_scores: np.ndarray | None     # [Q, L, D] or None
    normalized_scores: np.ndarray | None
    queries: list[dict]                 # in row order; `id`, `task`, optional `answer`, `steps`, `nats`
    doc_ids: np.ndarray                 # [D] str
    doc_sources: np.ndarray             # [D] str
    doc_texts: object                   # pyarrow array or list of str, indexable via `take_texts`
    layer_names: list[str] = field(default_factory=list)


def take_texts(texts, indices: np.ndarray) -> list[str]:
    if isinstance(texts, list):
        return [texts[i] for i in indices]
    return texts.take(indices).to_pylist()


def analyze(inputs: AnalysisInputs, top_k: int = TOP_K, progress: bool = True) -> dict:
    """All analysis tables as DataFrames plus `findings` (a dict)."""
    scores = inputs.scores
    n_queries, n_docs = scores.shape
    query_ids = [str(q["id"]) for q in inputs.queries]
    tasks = [str(q["task"]) for q in inputs.queries]
    source_codes, source_names = pd.factorize(pd.Series(inputs.doc_sources, dtype=object), sort=True)
    base_share = np.bincount(source_codes, minlength=len(source_names)) / max(n_docs, 1)
    multiplier_ks = source_multiplier_ks(n_docs)
    occurrence_depth = min(max(OCCURRENCE_KS), n_docs)

    top_rows, magnitude_rows, power_rows, occurrence_rows, layer_rows = [], [], [], [], []
    source_counts = {}    # (task, side, k) -> counts per source, summed over the task's queries
    rows = range(n_queries)
    for qi in tqdm(rows, desc="analyze", unit="query", disable=not progress):
        row = np.asarray(scores[qi], dtype=np.float32)
        ascending = np.argsort(row, kind="stable")
        descending = ascending[::-1]
        query, task = inputs.queries[qi], tasks[qi]
        nats = float(query.get("nats") or math.nan)
        targets = occurrence.query_targets(query)
        context = occurrence.context_terms(query)

        # top/bottom documents with answer and step hits
        for side, order in (("top", descending), ("bottom", ascending)):
            chosen = order[:min(top_k, n_docs)]
            texts = take_texts(inputs.doc_texts, chosen)
            hits = {name: contains_value(texts, value) for name, value in targets}
            step_hits = [hit for name, hit in hits.items() if name.startswith("step_")]
            normalized = (np.asarray(inputs.normalized_scores[qi][chosen], dtype=np.float64)
                          if inputs.normalized_scores is not None else np.full(len(chosen), np.nan))
            top_rows.append(pd.DataFrame({
                "query_id": query_ids[qi], "task": task, "side": side,
                "rank": np.arange(1, len(chosen) + 1), "doc_index": chosen.astype(np.int64),
                "doc_id": inputs.doc_ids[chosen], "source": np.asarray(source_names)[source_codes[chosen]],
                "score": row[chosen].astype(np.float64), "score_per_nat": row[chosen] / nats,
                "score_normalized": normalized,
                "contains_answer": hits.get("answer", np.zeros(len(chosen), dtype=bool)),
                "steps_found": np.sum(step_hits, axis=0).astype(np.int64) if step_hits else 0,
                "n_steps": len(step_hits),
            }))

        # answer and step occurrence in the top 50/100/500
        deep = take_texts(inputs.doc_texts, descending[:occurrence_depth])
        searched = [(name, value, contains_value(deep, value)) for name, value in targets]
        if targets and targets[0][0] == "answer":
            searched.append(("answer_in_context", targets[0][1], in_context_mask(deep, targets[0][1], context)))
        for name, value, hit in searched:
            for k in OCCURRENCE_KS:
                window = hit[:k]
                occurrence_rows.append((query_ids[qi], task, k, name, value, int(window.sum()), bool(window.any()),
                                        int(np.argmax(window)) + 1 if window.any() else -1))

        # influence magnitude by percentile, per sign; power law over the top positive scores
        n_pos = int(np.count_nonzero(row > 0))
        n_neg = int(np.count_nonzero(row < 0))
        positive = row[descending[:n_pos]].astype(np.float64)
        negative = -row[ascending[:n_neg]].astype(np.float64)
        for sign, magnitudes in (("positive", positive), ("negative", negative)):
            cumulative, relative = magnitude_curve(magnitudes)
            magnitude_rows.append(pd.DataFrame({"query_id": query_ids[qi], "task": task, "sign": sign,
                                                "percentile": PERCENTILES, "cumulative": cumulative,
                                                "relative": relative}))
        power_rows.append((query_ids[qi], task, *power_law_fit(positive[:POWER_LAW_N])))

        # source counts among the top/bottom k
        for side, order in (("top", descending), ("bottom", ascending)):
            codes = source_codes[order]
            for k in multiplier_ks:
                counts = np.bincount(codes[:k], minlength=len(source_names))
                key = (task, side, k)
                source_counts[key] = source_counts.get(key, 0) + counts

        # per-layer share of absolute influence
        if inputs.layer_scores is not None:
            per_layer = np.abs(np.asarray(inputs.layer_scores[qi], dtype=np.float32)).sum(axis=1, dtype=np.float64)
            total = per_layer.sum()
            layer_rows.append(per_layer / total if total > 0 else np.full(len(per_layer), np.nan))

    tables = {
        "top_docs": pd.concat(top_rows, ignore_index=True),
        "magnitude": pd.concat(magnitude_rows, ignore_index=True),
        "power_law": pd.DataFrame(power_rows, columns=["query_id", "task", "slope", "intercept", "r2", "n_fit"]),
        "answer_occurrence": pd.DataFrame(occurrence_rows, columns=[
            "query_id", "task", "k", "target", "value", "n_docs", "found", "first_rank"]),
    }
    r, p = pearson_matrix(scores)
    tables["correlations"] = correlation_table(r, p, query_ids, tasks)
    tables["task_correlations"] = task_correlation_table(r, p, tasks)
    tables["magnitude_by_task"] = magnitude_by_task(tables["magnitude"])
    tables["answer_rates"] = answer_rates(tables["answer_occurrence"])
    tables["source_multipliers"] = source_multiplier_table(source_counts, tasks, list(source_names), base_share)
    tables["layer_share"] = layer_share_table(layer_rows, tasks, inputs.layer_names)
    tables["findings"] = findings(r, tasks, tables["answer_rates"])
    return tables


def correlation_table(r, p, query_ids, tasks) -> pd.DataFrame:
    n = len(query_ids)
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a, b = a.ravel(), b.ravel()
    ids, task_array = np.asarray(query_ids, dtype=object), np.asarray(tasks, dtype=object)
    return pd.DataFrame({"query_a": ids[a], "query_b": ids[b], "task_a": task_array[a], "task_b": task_array[b],
                         "pearson": r.ravel(), "p_value": p.ravel()})


def task_correlation_table(r, p, tasks) -> pd.DataFrame:
    """Mean, std, mean p-value and fraction with p < 0.05 of the Pearson r over off-diagonal query pairs."""
    task_array = np.asarray(tasks, dtype=object)
    off_diagonal = ~np.eye(len(tasks), dtype=bool)
    rows = []
    for task_a in dict.fromkeys(tasks):
        for task_b in dict.fromkeys(tasks):
            mask = np.outer(task_array == task_a, task_array == task_b) & off_diagonal
            values, p_values = r[mask], p[mask]
            valid = ~np.isnan(values)
            rows.append((task_a, task_b,
                         float(np.mean(values[valid])) if valid.any() else math.nan,
                         float(np.std(values[valid])) if valid.any() else math.nan,
                         int(mask.sum()),
                         float(np.mean(p_values[valid])) if valid.any() else math.nan,
                         float(np.mean(p_values[valid] < 0.05)) if valid.any() else math.nan))
    return pd.DataFrame(rows, columns=["task_a", "task_b", "mean_pearson", "std_pearson", "n_pairs",
                                       "mean_p_value", "frac_significant"])


def magnitude_by_task(magnitude: pd.DataFrame) -> pd.DataFrame:
    grouped = magnitude.groupby(["task", "sign", "percentile"], sort=False)
    return grouped.agg(cumulative_mean=("cumulative", "mean"), relative_mean=("relative", "mean"),
                       n_queries=("query_id", "nunique")).reset_index()


def answer_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Fraction of (query, target) pairs of a task found in the top k; answer, answer_in_context and steps apart."""
    columns = ["task", "k", "target_kind", "rate", "n"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    kind = np.where(table["target"].str.startswith("step_"), "step", table["target"])
    grouped = table.assign(target_kind=kind).groupby(["task", "k", "target_kind"], sort=False)
    return grouped.agg(rate=("found", "mean"), n=("found", "size")).reset_index()[columns]


def source_multiplier_table(source_counts, tasks, source_names, base_share) -> pd.DataFrame:
    """Share of each source among a task's top/bottom k (pooled over its queries) over its corpus share."""
    queries_per_task = pd.Series(tasks).value_counts()
    frames = []
    for (task, side, k), counts in source_counts.items():
        share = counts / (k * queries_per_task[task])
        with np.errstate(divide="ignore", invalid="ignore"):
            multiplier = np.where(base_share > 0, share / base_share, np.nan)
        frames.append(pd.DataFrame({"task": task, "side": side, "k": k, "source": source_names,
                                    "count": counts.astype(np.int64), "share": share, "base_share": base_share,
                                    "multiplier": multiplier}))
    return pd.concat(frames, ignore_index=True)


def layer_share_table(layer_rows, tasks, layer_names) -> pd.DataFrame:
    """Mean over a task's queries of each layer's share of the query's total absolute influence."""
    columns = ["task", "layer_index", "layer", "share"]
    if not layer_rows:
        return pd.DataFrame(columns=columns)
    shares = np.vstack(layer_rows)
    task_array = np.asarray(tasks, dtype=object)
    names = layer_names or [str(i) for i in range(shares.shape[1])]
    rows = []
    for task in dict.fromkeys(tasks):
        mean = np.nanmean(shares[task_array == task], axis=0)
        rows += [(task, index, names[index], float(mean[index])) for index in range(shares.shape[1])]
    return pd.DataFrame(rows, columns=columns)


def findings(r, tasks, rates: pd.DataFrame) -> dict:
    """The paper's two directions on this run, with plain notes where they do not hold or cannot be checked."""
    task_array = np.asarray(tasks, dtype=object)
    off_diagonal = ~np.eye(len(tasks), dtype=bool)
    same_task = (task_array[:, None] == task_array[None, :]) & off_diagonal
    reasoning = np.array([is_reasoning_task(t) for t in tasks], dtype=bool)
    factual = task_array == FACTUAL_TASK

    def mean_of(mask):
        values = r[mask]
        values = values[~np.isnan(values)]
        return float(values.mean()) if len(values) else None

    def rate_of(selected, kind="answer"):
        at_k = rates[(rates["target_kind"] == kind) & (rates["k"] == FINDINGS_K) & selected(rates["task"])]
        return float(np.average(at_k["rate"], weights=at_k["n"])) if len(at_k) and at_k["n"].sum() else None

    reasoning_corr = mean_of(same_task & reasoning[:, None])
    factual_corr = mean_of(same_task & factual[:, None])
    result = {"reasoning_same_task_mean_corr": reasoning_corr, "factual_mean_corr": factual_corr,
              "reasoning_correlates_more": None, "answer_rate_k": FINDINGS_K, "notes": []}
    notes = result["notes"]
    if reasoning_corr is None or factual_corr is None:
        notes.append("Correlation direction not checkable: needs at least two queries of a reasoning task "
                     "and two factual queries.")
    else:
        result["reasoning_correlates_more"] = reasoning_corr > factual_corr
        verb = "holds" if reasoning_corr > factual_corr else "does NOT hold"
        notes.append(f"Same-task reasoning pairs correlate {reasoning_corr:.3f} on average vs factual pairs "
                     f"{factual_corr:.3f}: the paper's direction {verb}.")
    is_reasoning = lambda t: t.map(is_reasoning_task).astype(bool)  # noqa: E731
    for suffix, kind, what in (("", "answer", "The answer string occurs"),
                               ("_in_context", "answer_in_context", "The answer occurs with the query's context terms")):
        factual_rate = rate_of(lambda t: t == FACTUAL_TASK, kind)
        reasoning_rate = rate_of(is_reasoning, kind)
        result[f"factual_answer_rate{suffix}"] = factual_rate
        result[f"reasoning_answer_rate{suffix}"] = reasoning_rate
        key = f"factual_answers_more_often{suffix}"
        if factual_rate is None or reasoning_rate is None:
            result[key] = None
            notes.append(f"{kind} direction not checkable: needs factual and reasoning queries with answers.")
            continue
        result[key] = factual_rate > reasoning_rate
        verb = "holds" if factual_rate > reasoning_rate else "does NOT hold"
        notes.append(f"{what} in the top {FINDINGS_K} documents for {factual_rate:.0%} of factual vs "
                     f"{reasoning_rate:.0%} of reasoning queries: the paper's direction {verb}.")
    return result


# ---------------------------------------------------------------- reading and writing a run directory

def load_inputs(run: rundir.RunDir) -> AnalysisInputs:
    scores = np.load(run.file(rundir.SCORES), mmap_mode="r", allow_pickle=False)
    layer_path, normalized_path = run.file(rundir.LAYER_SCORES), run.file(rundir.NORMALIZED_SCORES)
    documents = pq.read_table(run.file(rundir.DOCUMENTS), columns=["id", "source", "text"])
    layers_path = run.file(rundir.LAYERS)
    return AnalysisInputs(
        scores=scores,
        layer_scores=np.load(layer_path, mmap_mode="r", allow_pickle=False) if os.path.exists(layer_path) else None,
        normalized_scores=(np.load(normalized_path, mmap_mode="r", allow_pickle=False)
                           if os.path.exists(normalized_path) else None),
        queries=rundir.read_jsonl(run.file(rundir.QUERIES)),
        doc_ids=np.asarray(documents.column("id").to_pylist(), dtype=object),
        doc_sources=np.asarray(documents.column("source").to_pylist(), dtype=object),
        doc_texts=documents.column("text").combine_chunks(),
        layer_names=rundir.read_json(layers_path) if os.path.exists(layers_path) else [],
    )


def write_tables(run: rundir.RunDir, tables: dict) -> None:
    for name, table in tables.items():
        if name == "findings":
            rundir.write_json(run.file(rundir.ANALYSIS_DIR, "findings.json"), table)
        else:
            rundir.write_parquet(run.file(rundir.ANALYSIS_DIR, f"{name}.parquet"), table)


def analyze_run(run: rundir.RunDir, top_k: int = TOP_K, progress: bool = True) -> dict:
    tables = analyze(load_inputs(run), top_k=top_k, progress=progress)
    write_tables(run, tables)
    return tables
