"""Answer / step occurrence among each query's top documents against the chance of finding them in k random
documents (hypergeometric over the corpus-wide match indicator), for what the model completed and for the
reference answer; the paper's occurrence finding.

For a query and a target value matched by M of the N documents, the hits among k random documents follow
Hypergeom(N, M, k): expected k·M/N, P(at least one) = 1 − P(0). Enrichment = observed hits / expected hits.

Enrichment cannot exceed N/M (all k top documents matching), so targets found in many documents (small numbers)
have a low ceiling and a ratio of enrichments compares ceilings as much as retrieval. Two ceiling-free measures
carry the verdict instead: the range-scaled enrichment (observed − expected) / (min(k, M) − expected), 0 for
chance and 1 for perfect retrieval whatever M is, and the AUC of the query's whole ranking for the M containing
documents (share of (containing, other) document pairs ranked containing-first; 0.5 chance, 1 perfect).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from precompute.analysis import occurrence, statistics
from precompute.analysis.registry import findings, row_statistic, table
from precompute.analysis.statistics import Finding
from precompute.analysis.statistics import number_text as number

OCCURRENCE_KS = (50, 100, 500)
KINDS = ("answer", "answer_in_context", "step")


def occurrence_ks(ctx) -> list[int]:
    return sorted({min(k, ctx.n_docs) for k in OCCURRENCE_KS + (ctx.findings_k,)})


def target_kind(target: str) -> str:
    return "step" if target.startswith("step_") else target


def ranking_auc(ranks: np.ndarray, n_docs: int) -> float:
    """AUC of a ranking for the documents at 0-based `ranks` (the M containing documents) against the other
    N − M: 1 − (non-containing documents ranked above a containing one, summed) / (M (N − M)); the non-containing
    documents above them number Σ ranks − M(M − 1)/2. NaN when M is 0 or N."""
    m = len(ranks)
    if m == 0 or m == n_docs:
        return float("nan")
    return float(1.0 - (float(np.sum(ranks)) - m * (m - 1) / 2.0) / (m * (n_docs - m)))


def scaled_enrichment(observed, expected, ceiling):
    """(observed − expected) / (ceiling − expected), NaN where the ceiling equals the expectation (M = 0 or D)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        room = np.asarray(ceiling, dtype=np.float64) - expected
        above = np.asarray(observed, dtype=np.float64) - expected
        return np.where(room > 0, above / room, np.nan)[()]


@row_statistic("occurrence")
def occurrence_counts(ctx, row) -> list[tuple]:
    """(basis, target, value, n_matching, hits per k, first rank or -1, AUC) for every target of the query."""
    ks = np.asarray(occurrence_ks(ctx))
    found = []
    for basis in occurrence.BASES:
        targets = ctx.targets[basis][row.index]
        searched = [(target, value, ctx.search.containing(value)) for target, value in targets]
        if targets and targets[0][0] == "answer":
            answer = targets[0][1]
            searched.insert(1, ("answer_in_context", answer,
                                ctx.search.in_context(answer, ctx.context_terms[row.index])))
        for target, value, hits in searched:
            ranks = row.rank[hits]
            counts = (ranks[None, :] < ks[:, None]).sum(axis=1) if len(ranks) else np.zeros(len(ks), np.int64)
            first = int(ranks.min()) + 1 if len(ranks) else -1
            found.append((basis, target, value, len(hits), counts, first, ranking_auc(ranks, ctx.n_docs)))
    return found


OCCURRENCE_COLUMNS = {
    "query_id": "query id", "task": "query task",
    "correct": "the completion's answer equals the reference (`correct` field, else parsed; None without answer)",
    "basis": "`completion` (values parsed from what the model wrote) or `reference` (the query's answer/steps)",
    "k": "top-k depth (50, 100, 500, capped at D)",
    "target": "`answer`, `answer_in_context`, or `step_1`, `step_2`, … (intermediate results, never the final "
              "answer)",
    "value": "the string searched", "n_docs": "how many of the top k contain it", "found": "n_docs > 0",
    "first_rank": "rank of the first top-k document containing it, -1 if none in the top k",
    "n_matching": "documents of the whole corpus containing it (M)", "expected": "k·M/D: hits expected by chance",
    "max_hits": "min(k, M): the most hits the top k can hold (the ceiling)",
    "scaled": "(n_docs − expected) / (max_hits − expected): 0 chance, 1 perfect retrieval; NaN when M is 0 or D",
    "auc": "share of (containing, non-containing) document pairs the query's full ranking puts containing-first "
           "(0.5 chance, 1 perfect; NaN when M is 0 or D); the same for every k"}


@table("answer_occurrence", "per query, basis, target and k: matches among the top k and by chance",
       OCCURRENCE_COLUMNS)
def answer_occurrence(ctx) -> pd.DataFrame:
    return occurrence_frame(ctx).drop(columns="target_kind")


def occurrence_table(ctx) -> pd.DataFrame:
    ks = occurrence_ks(ctx)
    rows = []
    for index, found in enumerate(ctx.rows["occurrence"]):
        for basis, target, value, n_matching, counts, first, auc in found:
            for k, count in zip(ks, counts):
                expected, ceiling = k * n_matching / ctx.n_docs, min(k, n_matching)
                rows.append((ctx.query_ids[index], ctx.tasks[index], ctx.correct[index], basis, k, target, value,
                             int(count), bool(count > 0), first if 0 < first <= k else -1, n_matching, expected,
                             ceiling, scaled_enrichment(count, expected, ceiling), auc))
    return pd.DataFrame(rows, columns=list(OCCURRENCE_COLUMNS))


@table("answer_rates", "per task, basis, k and target kind: how often a target occurs in the top k vs by chance", {
    "task": "query task", "basis": "`completion` or `reference`", "k": "top-k depth",
    "target_kind": "`answer`, `answer_in_context` or `step`",
    "rate": "fraction of (query, target) with at least one top-k document containing it",
    "chance_rate": "mean probability that k random documents contain it (1 − hypergeometric P(0))",
    "n": "(query, target) pairs"})
def answer_rates(ctx) -> pd.DataFrame:
    frame = occurrence_frame(ctx)
    chance = stats.hypergeom.sf(0, ctx.n_docs, frame["n_matching"], frame["k"]) if len(frame) else []
    frame = frame.assign(chance=chance)
    grouped = frame.groupby(["task", "basis", "k", "target_kind"], sort=False)
    result = grouped.agg(rate=("found", "mean"), chance_rate=("chance", "mean"), n=("found", "size")).reset_index()
    return result[["task", "basis", "k", "target_kind", "rate", "chance_rate", "n"]]


def occurrence_frame(ctx) -> pd.DataFrame:
    """answer_occurrence with a `target_kind` column (computed once per analysis)."""
    def compute(ctx):
        frame = occurrence_table(ctx)
        return frame.assign(target_kind=frame["target"].map(target_kind))
    return ctx.shared("answer_occurrence", compute)


def per_query_sums(ctx, basis: str, k: int, kind: str) -> dict[str, np.ndarray]:
    """Per query row, summed over its targets of the kind: observed hits, expected hits, matching documents (M)
    and ceilings min(k, M) (one target per query for answers); `auc`: the mean AUC of its targets with one (NaN
    if none); `has`: rows with such a target."""
    def compute(ctx):
        frame = occurrence_frame(ctx)
        rows_of = pd.Index(ctx.query_ids).get_indexer(frame["query_id"])
        sums = {}
        for key, part in frame.groupby(["basis", "k", "target_kind"], sort=False):
            rows = rows_of[part.index.to_numpy()]
            found = {name: np.bincount(rows, weights=part[column].astype(np.float64), minlength=ctx.n_queries)
                     for name, column in (("observed", "n_docs"), ("expected", "expected"),
                                          ("matching", "n_matching"), ("ceiling", "max_hits"))}
            auc = part["auc"].to_numpy(np.float64)
            defined = np.bincount(rows, weights=np.isfinite(auc), minlength=ctx.n_queries)
            with np.errstate(invalid="ignore", divide="ignore"):
                found["auc"] = np.bincount(rows, weights=np.nan_to_num(auc), minlength=ctx.n_queries) / defined
            found["has"] = np.bincount(rows, minlength=ctx.n_queries) > 0
            sums[key] = found
        return sums
    empty = {name: np.zeros(ctx.n_queries) for name in ("observed", "expected", "matching", "ceiling")}
    return ctx.shared("occurrence_sums", compute).get(
        (basis, k, kind), {**empty, "auc": np.full(ctx.n_queries, np.nan), "has": np.zeros(ctx.n_queries, bool)})


def enrichment(observed, expected):
    def statistic(*weights):
        with np.errstate(invalid="ignore", divide="ignore"):
            return sum(w @ observed for w in weights) / sum(w @ expected for w in weights)
    return statistic


def scaled(observed, expected, ceiling):
    """Pooled range-scaled enrichment of the weighted queries: Σ (observed − expected) / Σ (ceiling − expected)
    (queries with no room above chance add 0 to both sums)."""
    return enrichment(np.asarray(observed) - expected, np.asarray(ceiling) - expected)


def mean_auc(auc):
    """Weighted mean AUC over the queries whose AUC is defined."""
    defined = np.isfinite(auc).astype(np.float64)
    filled = np.nan_to_num(np.asarray(auc, dtype=np.float64))
    return enrichment(filled, defined)


def measures(sums) -> list:
    """The three pooled measures of a group of queries: enrichment, range-scaled enrichment, mean AUC."""
    return [enrichment(sums["observed"], sums["expected"]), scaled(sums["observed"], sums["expected"], sums["ceiling"]),
            mean_auc(sums["auc"])]


ENRICHMENT_COLUMNS = {
           "task": "query task", "basis": "`completion` or `reference`", "k": "top-k depth",
           "target_kind": "`answer`, `answer_in_context` or `step`", "n_queries": "queries with such a target",
           "observed": "hits summed over the task's queries and targets", "expected": "k·M/D summed likewise",
           "enrichment": "observed / expected (descriptive: its ceiling D/M differs between targets)",
           "ci_low": "lower end of the 95% interval (bootstrap over queries)",
           "ci_high": "upper end of the 95% interval",
           "p_value": "P(hits ≥ observed) if the top k were random documents (exact sum of hypergeometrics; answers "
                      "only)",
           "ceiling": "min(k, M) summed: the most hits possible",
           "scaled": "(observed − expected) / (ceiling − expected): 0 chance, 1 perfect retrieval",
           "scaled_ci_low": "95% interval of scaled, low (bootstrap over queries)", "scaled_ci_high": "high",
           "auc": "mean over queries of the AUC of their full ranking for the containing documents (per query: mean "
                  "over its targets; 0.5 chance, 1 perfect; the same for every k)",
           "auc_ci_low": "95% interval of auc, low (bootstrap over queries)", "auc_ci_high": "high"}


@table("answer_enrichment", "per task, basis, k and target kind: observed top-k hits against chance and against "
       "the ceiling", ENRICHMENT_COLUMNS)
def answer_enrichment(ctx) -> pd.DataFrame:
    rows = []
    for task, task_rows in ctx.task_rows.items():
        for basis in occurrence.BASES:
            for k in occurrence_ks(ctx):
                for kind in KINDS:
                    sums = per_query_sums(ctx, basis, k, kind)
                    chosen = task_rows[sums["has"][task_rows]]
                    if len(chosen) == 0:
                        continue
                    rows.append(enrichment_row(ctx, task, basis, k, kind, sums, chosen))
    return pd.DataFrame(rows, columns=list(ENRICHMENT_COLUMNS))


def enrichment_row(ctx, task, basis, k, kind, sums, chosen) -> tuple:
    """One answer_enrichment row: the three measures on the chosen queries with one bootstrap for all three."""
    statistics_of = measures(sums)

    def stacked(*weights):
        return np.stack([np.asarray(statistic(*weights), dtype=np.float64) for statistic in statistics_of])
    weights = statistics.query_weights([chosen], ctx.n_queries)
    ratio, scaled_value, auc = (float(value) for value in stacked(*weights))
    low, high = statistics.bootstrap_interval([chosen], stacked, ctx.n_queries,
                                              ctx.rng(f"answer_enrichment/{task}/{basis}/{k}/{kind}"), ctx.n_resamples)
    observed, expected = sums["observed"][chosen].sum(), sums["expected"][chosen].sum()
    p_value = np.nan if kind == "step" else statistics.hypergeometric_sum_sf(
        observed, [k] * len(chosen), sums["matching"][chosen].astype(np.int64), ctx.n_docs)
    return (task, basis, k, kind, len(chosen), float(observed), float(expected), ratio, float(low[0]),
            float(high[0]), p_value, float(sums["ceiling"][chosen].sum()), scaled_value, float(low[1]),
            float(high[1]), auc, float(low[2]), float(high[2]))


CLAIMS = {
    "answer": "Answers to reasoning questions appear among the top documents far less than answers to factual "
              "questions (Ruis et al.), measured against chance and the ceiling (range-scaled enrichment).",
    "answer_in_context": "Answers to reasoning questions, together with the question's own terms, appear among the "
                         "top documents far less than factual answers do (Ruis et al.), measured against chance and "
                         "the ceiling (range-scaled enrichment).",
}


@findings("occurrence", order=2)
def occurrence_findings(ctx) -> list[Finding]:
    found = []
    k = ctx.findings_k
    for kind, claim in CLAIMS.items():
        sums = per_query_sums(ctx, "completion", k, kind)
        groups = ctx.reasoning_and_factual(sums["has"])
        if groups is not None:
            found.append(occurrence_finding(ctx, kind, claim, sums, groups, k))
    return found


def occurrence_finding(ctx, kind, claim, sums, groups, k) -> Finding:
    """Reasoning minus factual range-scaled enrichment (the verdict), with the raw enrichment ratio and the AUC
    difference (each with its interval) beside it."""
    ratio_of, scaled_of, auc_of = measures(sums)

    def difference(*w):
        return scaled_of(*w[:-1]) - scaled_of(w[-1])

    def beside(*w):
        return np.stack([np.asarray(ratio_of(*w[:-1]) / ratio_of(w[-1]), dtype=np.float64),
                         np.asarray(auc_of(*w[:-1]) - auc_of(w[-1]), dtype=np.float64)])
    name = f"occurrence.{kind}"
    weights = statistics.query_weights(groups, ctx.n_queries)
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high, interval_p = statistics.bootstrap_test(groups, difference, ctx.n_queries, ctx.rng(name),
                                                          ctx.n_resamples, null_value=0.0)
        beside_low, beside_high = statistics.bootstrap_interval(groups, beside, ctx.n_queries,
                                                                ctx.rng(name + "/beside"), ctx.n_resamples)
        ratio, auc_difference = (float(v) for v in beside(*weights))
    return Finding(
        name=name, claim=claim,
        effect_label=f"reasoning minus factual range-scaled enrichment in the top {k}", paper_direction="less",
        measure="difference", effect=float(difference(*weights)), ci_low=float(low), ci_high=float(high),
        p_value=statistics.permutation_p_value(groups, difference, ctx.n_queries, ctx.rng(name + "/permutation"),
                                               ctx.n_resamples),
        p_value_method=statistics.PERMUTATION, n=int(sum(len(g) for g in groups)), interval_p=interval_p,
        parts={"reasoning_scaled": float(scaled_of(*weights[:-1])), "factual_scaled": float(scaled_of(weights[-1])),
               "reasoning_auc": float(auc_of(*weights[:-1])), "factual_auc": float(auc_of(weights[-1])),
               "auc_difference": auc_difference, "auc_difference_ci_low": float(beside_low[1]),
               "auc_difference_ci_high": float(beside_high[1]),
               "reasoning_enrichment": float(ratio_of(*weights[:-1])),
               "factual_enrichment": float(ratio_of(weights[-1])),
               "enrichment_ratio": ratio, "enrichment_ratio_ci_low": float(beside_low[0]),
               "enrichment_ratio_ci_high": float(beside_high[0])},
        notes=[f"basis: what the model completed; k = {k}",
               f"AUC (whole ranking), reasoning minus factual: {number(auc_difference)} [{number(beside_low[1])}, "
               f"{number(beside_high[1])}]",
               f"raw enrichment ratio, reasoning ÷ factual: {number(ratio)}× [{number(beside_low[0])}, "
               f"{number(beside_high[0])}] (descriptive only: each target's enrichment is capped at D/M)"])
