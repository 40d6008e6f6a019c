"""Ground-truth specificity (corpora with a `kind` column of procedure documents, see ground_truth): do a task's
top documents teach *its own* procedure more than the other procedures, and more so than a text-overlap ranking?

For a task T and a ranking, each procedure P has its enrichment among the top k (share of the top k teaching P ÷
P's corpus share); specificity = T's own enrichment ÷ the mean enrichment of the other procedures (1: no more
own-procedure than other-procedure documents). Rankings: the run's scores (`influence`) and BM25 between each
query's prompt + completion and the documents (`bm25`, precompute.analysis.bm25_ranking; skipped above MAX_BM25_DOCS
documents). Intervals: bootstrap over the task's queries (both rankings resampled together, so their ratio is
paired).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import ranking, statistics
from precompute.analysis.registry import findings, table
from precompute.analysis.statistics import Finding
from precompute.analysis.statistics import number_text as number
from precompute.analysis.tables.ground_truth import counts_of, ground_truth_ks, procedure_masks

INFLUENCE, BM25 = "influence", "bm25"
MAX_BM25_DOCS = 200_000


def bm25_counts(ctx) -> dict[str, np.ndarray]:
    """procedure -> [Q] how many of each query's top findings_k BM25 documents teach it ({} when skipped)."""
    def compute(ctx):
        masks = procedure_masks(ctx)
        if not masks or ctx.n_docs > MAX_BM25_DOCS:
            return {}
        from precompute.analysis.bm25_ranking import BM25Ranking, query_text
        index = BM25Ranking([str(text) for text in ctx.inputs.doc_texts])
        tops = [ranking.top_columns(index.scores(query_text(query)), ctx.findings_k) for query in ctx.queries]
        return {task: np.asarray([mask[top].sum() for top in tops], dtype=np.float64) for task, mask in masks.items()}
    return ctx.shared("bm25_procedure_counts", compute)


def ranking_counts(ctx) -> dict[str, dict[str, np.ndarray]]:
    """ranking -> procedure -> [Q] top-findings_k counts, for the rankings at hand."""
    position = ground_truth_ks(ctx).index(ctx.findings_k)
    found = {INFLUENCE: {task: counts_of(ctx, task, position) for task in procedure_masks(ctx)}}
    if bm25_counts(ctx):
        found[BM25] = bm25_counts(ctx)
    return found


def enrichments(counts: dict[str, np.ndarray], bases: dict[str, float], k: int, own: str):
    """statistic(*weights) -> [P + 1, ...]: each procedure's enrichment (in `counts` order), then own ÷ mean other."""
    names = list(counts)
    matrix = np.stack([counts[name] for name in names], axis=1)
    base = np.asarray([bases[name] for name in names])
    others = np.asarray([name != own for name in names])

    def statistic(*weights):
        w = sum(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = (w @ matrix) / (w.sum(axis=-1)[..., None] * k) / base
            specificity = ratios[..., names.index(own)] / ratios[..., others].mean(axis=-1)
        return np.moveaxis(np.concatenate([ratios, specificity[..., None]], axis=-1), -1, 0)
    return statistic


SPECIFICITY_COLUMNS = {
    "task": "query task", "ranking": "`influence` (the run's scores) or `bm25` (prompt + completion vs documents)",
    "k": "top-k depth (the findings' k)", "procedure": "task whose procedure the documents teach",
    "own": "procedure == task", "n_queries": "queries of the task",
    "ratio": "share of the top k teaching the procedure ÷ its corpus share",
    "ci_low": "95% interval of ratio, low (bootstrap over queries)", "ci_high": "high",
    "specificity": "the task's own ratio ÷ the mean ratio of the other procedures (same on every row of the task "
                   "and ranking)",
    "specificity_ci_low": "95% interval of specificity, low", "specificity_ci_high": "high"}


@table("ground_truth_specificity", "per task with its own procedure documents, ranking and procedure: enrichment "
       "in the top k, and own ÷ mean-other enrichment (empty without a `kind` column)", SPECIFICITY_COLUMNS)
def ground_truth_specificity(ctx) -> pd.DataFrame:
    masks = procedure_masks(ctx)
    bases = {task: float(mask.mean()) for task, mask in masks.items()}
    rows = []
    for task in ctx.reasoning_tasks:
        task_rows = ctx.task_rows[task]
        if task not in masks or len(masks) < 2 or len(task_rows) < 2:
            continue
        for name, counts in ranking_counts(ctx).items():
            statistic = enrichments(counts, bases, ctx.findings_k, task)
            point = statistic(np.bincount(task_rows, minlength=ctx.n_queries).astype(np.float64))
            low, high = statistics.bootstrap_interval([task_rows], statistic, ctx.n_queries,
                                                      ctx.rng(f"ground_truth_specificity/{task}/{name}"),
                                                      ctx.n_resamples)
            for position, procedure in enumerate(counts):
                rows.append((task, name, ctx.findings_k, procedure, procedure == task, len(task_rows),
                             float(point[position]), float(low[position]), float(high[position]),
                             float(point[-1]), float(low[-1]), float(high[-1])))
    return pd.DataFrame(rows, columns=list(SPECIFICITY_COLUMNS))


@findings("ground_truth_specificity", order=5)
def specificity_findings(ctx) -> list[Finding]:
    masks = procedure_masks(ctx)
    bases = {task: float(mask.mean()) for task, mask in masks.items()}
    counts = ranking_counts(ctx)
    found = []
    for task in ctx.reasoning_tasks:
        rows = ctx.task_rows[task]
        if task in masks and len(masks) >= 2 and len(rows) >= 2:
            found.append(specificity_finding(ctx, task, rows, counts, bases))
    return found


def specificity_finding(ctx, task, rows, counts, bases) -> Finding:
    """Influence specificity (the verdict), with BM25's specificity and influence ÷ BM25 (paired) beside it."""
    by_ranking = {name: enrichments(part, bases, ctx.findings_k, task) for name, part in counts.items()}

    def specificity(*w):
        return by_ranking[INFLUENCE](*w)[-1]

    def beside(*w):
        values = [by_ranking[name](*w)[-1] for name in by_ranking]
        return np.stack(values + ([values[0] / values[1]] if len(values) > 1 else []))
    name = f"ground_truth.{task}.specificity"
    weights = statistics.query_weights([rows], ctx.n_queries)
    low, high, interval_p = statistics.bootstrap_test([rows], specificity, ctx.n_queries, ctx.rng(name),
                                                      ctx.n_resamples, null_value=1.0)
    parts, notes = {}, []
    if BM25 in by_ranking:
        point = beside(*weights)
        side_low, side_high = statistics.bootstrap_interval([rows], beside, ctx.n_queries, ctx.rng(name + "/bm25"),
                                                            ctx.n_resamples)
        parts = {"bm25_specificity": float(point[1]), "bm25_specificity_ci_low": float(side_low[1]),
                 "bm25_specificity_ci_high": float(side_high[1]), "influence_over_bm25": float(point[2]),
                 "influence_over_bm25_ci_low": float(side_low[2]), "influence_over_bm25_ci_high": float(side_high[2])}
        notes = [f"BM25 (prompt + completion): own ÷ mean-other {number(point[1])} [{number(side_low[1])}, "
                 f"{number(side_high[1])}]; influence ÷ BM25 specificity {number(point[2])} [{number(side_low[2])}, "
                 f"{number(side_high[2])}] (above 1: influence is more procedure-specific than text overlap)"]
    own_point = by_ranking[INFLUENCE](*weights)
    parts.update({f"ratio_{procedure}": float(value) for procedure, value in zip(counts[INFLUENCE], own_point)})
    return Finding(
        name=name, claim=f"The top documents for {task} queries teach the {task} procedure more than the other "
                         "procedures (specificity, not only above chance; the demo world's ground truth).",
        effect_label=f"{task}-procedure enrichment in the top {ctx.findings_k} ÷ mean enrichment of the other "
                     "procedures", paper_direction="greater", measure="ratio",
        effect=float(own_point[-1]), ci_low=float(low), ci_high=float(high), p_value=float("nan"),
        p_value_method="none", n=len(rows), parts=parts, notes=notes, interval_p=interval_p)
