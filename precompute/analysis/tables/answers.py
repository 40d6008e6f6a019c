"""Answer / step occurrence among each query's top documents against the chance of finding them in k random
documents (hypergeometric over the corpus-wide match indicator), for what the model completed and for the
reference answer; the paper's occurrence finding.

For a query and a target value matched by M of the N documents, the hits among k random documents follow
Hypergeom(N, M, k): expected k·M/N, P(at least one) = 1 − P(0). Enrichment = observed hits / expected hits.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from precompute.analysis import occurrence, statistics
from precompute.analysis.registry import findings, row_statistic, table
from precompute.analysis.statistics import Finding

OCCURRENCE_KS = (50, 100, 500)
KINDS = ("answer", "answer_in_context", "step")


def occurrence_ks(ctx) -> list[int]:
    return sorted({min(k, ctx.n_docs) for k in OCCURRENCE_KS + (ctx.findings_k,)})


def target_kind(target: str) -> str:
    return "step" if target.startswith("step_") else target


@row_statistic("occurrence")
def occurrence_counts(ctx, row) -> list[tuple]:
    """(basis, target, value, n_matching, hits per k, first rank or -1) for every target of the query."""
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
            found.append((basis, target, value, len(hits), counts, first))
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
    "n_matching": "documents of the whole corpus containing it (M)", "expected": "k·M/D: hits expected by chance"}


@table("answer_occurrence", "per query, basis, target and k: matches among the top k and by chance",
       OCCURRENCE_COLUMNS)
def answer_occurrence(ctx) -> pd.DataFrame:
    return occurrence_frame(ctx).drop(columns="target_kind")


def occurrence_table(ctx) -> pd.DataFrame:
    ks = occurrence_ks(ctx)
    rows = []
    for index, found in enumerate(ctx.rows["occurrence"]):
        for basis, target, value, n_matching, counts, first in found:
            for k, count in zip(ks, counts):
                rows.append((ctx.query_ids[index], ctx.tasks[index], ctx.correct[index], basis, k, target, value,
                             int(count), bool(count > 0), first if 0 < first <= k else -1, n_matching,
                             k * n_matching / ctx.n_docs))
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
    """Per query row, summed over its targets of the kind: observed hits, expected hits and matching documents
    (M; one target per query for answers); `has`: rows with such a target."""
    def compute(ctx):
        frame = occurrence_frame(ctx)
        rows_of = pd.Index(ctx.query_ids).get_indexer(frame["query_id"])
        sums = {}
        for key, part in frame.groupby(["basis", "k", "target_kind"], sort=False):
            rows = rows_of[part.index.to_numpy()]
            found = {name: np.bincount(rows, weights=part[column].astype(np.float64), minlength=ctx.n_queries)
                     for name, column in (("observed", "n_docs"), ("expected", "expected"),
                                          ("matching", "n_matching"))}
            found["has"] = np.bincount(rows, minlength=ctx.n_queries) > 0
            sums[key] = found
        return sums
    empty = {name: np.zeros(ctx.n_queries) for name in ("observed", "expected", "matching")}
    return ctx.shared("occurrence_sums", compute).get((basis, k, kind), {**empty, "has": np.zeros(ctx.n_queries, bool)})


def enrichment(observed, expected):
    def statistic(*weights):
        with np.errstate(invalid="ignore", divide="ignore"):
            return sum(w @ observed for w in weights) / sum(w @ expected for w in weights)
    return statistic


@table("answer_enrichment", "per task, basis, k and target kind: observed top-k hits over hits expected by chance", {
    "task": "query task", "basis": "`completion` or `reference`", "k": "top-k depth",
    "target_kind": "`answer`, `answer_in_context` or `step`", "n_queries": "queries with such a target",
    "observed": "hits summed over the task's queries and targets", "expected": "k·M/D summed likewise",
    "enrichment": "observed / expected", "ci_low": "lower end of the 95% interval (bootstrap over queries)",
    "ci_high": "upper end of the 95% interval",
    "p_value": "P(hits ≥ observed) if the top k were random documents (exact sum of hypergeometrics; answers only)"})
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
                    observed, expected = sums["observed"][chosen].sum(), sums["expected"][chosen].sum()
                    low, high = statistics.bootstrap_interval(
                        [chosen], enrichment(sums["observed"], sums["expected"]), ctx.n_queries,
                        ctx.rng(f"answer_enrichment/{task}/{basis}/{k}/{kind}"), ctx.n_resamples)
                    p_value = np.nan if kind == "step" else statistics.hypergeometric_sum_sf(
                        observed, [k] * len(chosen), sums["matching"][chosen].astype(np.int64), ctx.n_docs)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio = observed / expected
                    rows.append((task, basis, k, kind, len(chosen), float(observed), float(expected), float(ratio),
                                 float(low), float(high), p_value))
    return pd.DataFrame(rows, columns=["task", "basis", "k", "target_kind", "n_queries", "observed", "expected",
                                       "enrichment", "ci_low", "ci_high", "p_value"])


CLAIMS = {
    "answer": "Answers to reasoning questions appear among the top documents far less than answers to factual "
              "questions (Ruis et al.), measured as enrichment over chance.",
    "answer_in_context": "Answers to reasoning questions, together with the question's own terms, appear among the "
                         "top documents far less than factual answers do (Ruis et al.), measured as enrichment over "
                         "chance.",
}


@findings("occurrence", order=2)
def occurrence_findings(ctx) -> list[Finding]:
    found = []
    k = ctx.findings_k
    for kind, claim in CLAIMS.items():
        sums = per_query_sums(ctx, "completion", k, kind)
        observed, expected, has = sums["observed"], sums["expected"], sums["has"]
        factual = ctx.task_rows.get("factual", np.zeros(0, np.int64))
        factual = factual[has[factual]]
        reasoning = [rows[has[rows]] for task, rows in ctx.task_rows.items() if task in ctx.reasoning_tasks]
        reasoning = [rows for rows in reasoning if len(rows) >= 2]
        if len(factual) < 2 or not reasoning:
            continue
        groups = reasoning + [factual]

        def ratio(*w, observed=observed, expected=expected):
            return enrichment(observed, expected)(*w[:-1]) / enrichment(observed, expected)(w[-1])
        weights = statistics.query_weights(groups, ctx.n_queries)
        name = f"occurrence.{kind}"
        low, high = statistics.bootstrap_interval(groups, ratio, ctx.n_queries, ctx.rng(name), ctx.n_resamples)
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = float(ratio(*weights))
        found.append(Finding(
            name=name, claim=claim, effect_label=f"reasoning enrichment ÷ factual enrichment in the top {k}",
            paper_direction="less", measure="ratio", effect=effect, ci_low=float(low), ci_high=float(high),
            p_value=statistics.permutation_p_value(groups, ratio, ctx.n_queries, ctx.rng(name + "/permutation"),
                                                   ctx.n_resamples),
            p_value_method="task labels permuted", n=int(sum(len(g) for g in groups)),
            parts={"reasoning_enrichment": float(enrichment(observed, expected)(*weights[:-1])),
                   "factual_enrichment": float(enrichment(observed, expected)(weights[-1]))},
            notes=[f"basis: what the model completed; k = {k}"]))
    return found
