"""Counterfactual validation (`precompute validate`): summaries of RUN/analysis/validation.parquet, when the run
has one, as two tables and one set of findings per ranking method. Empty tables when it has none.

Does training on a query's top-k documents raise log p(completion) more than training on random k-sets? The
statistics live in precompute.analysis.validation_statistics (crossed bootstrap over queries and random draws);
this module registers them and refreshes them in place after `validate` (without recomputing the rest).
"""
from __future__ import annotations

import math
import os

import pandas as pd

from precompute import rundir
from precompute.analysis import validation_statistics
from precompute.analysis import statistics
from precompute.analysis.registry import findings, table
from precompute.analysis.statistics import Finding

VALIDATION_FILE = rundir.VALIDATION
FINDING_PREFIX = "validation."

QUERY_DOCS = {
    "query_id": "query id", "task": "query task", "method": "ranking method (the run's strategy, another run's, bm25)",
    "top_delta": "Δ log p(completion) after the tail-patch on the method's top-k documents",
    "bottom_delta": "the same for its bottom-k documents (NaN for bm25)",
    "random_mean": "mean Δ over the random k-sets", "random_sd": "sd (ddof 1) of Δ over the random k-sets",
    "random_min": "smallest random Δ", "random_max": "largest random Δ", "n_random": "random k-sets (R)",
    "top_beats_all": "top Δ > every random Δ", "bottom_below_all": "bottom Δ < every random Δ",
    "top_z": "(top Δ − random mean) / random sd", "bottom_z": "(bottom Δ − random mean) / random sd",
    "top_win_rate": "share of random sets the top Δ exceeds (ties ½)",
    "bottom_win_rate": "share of random sets the bottom Δ is below (ties ½)",
    "top_tokens": "tokens in the top-k set", "bottom_tokens": "tokens in the bottom-k set",
    "random_tokens_mean": "mean tokens in a random k-set",
    "top_win_rate_per_token": "share of random sets whose Δ per set-token the top Δ per set-token exceeds (ties ½)"}
STATISTIC_DOCS = {
    "top_delta_mean": "mean top-k Δ over queries", "bottom_delta_mean": "mean bottom-k Δ over queries",
    "random_delta_mean": "mean random Δ over queries and draws",
    "frac_top_beats_all": "share of queries whose top-k Δ beats every random draw",
    "frac_bottom_below_all": "share of queries whose bottom-k Δ is below every random draw",
    "top_win_rate": "mean share of random draws the top-k Δ beats (chance ½)",
    "bottom_win_rate": "mean share of random draws the bottom-k Δ is below (chance ½)",
    "top_z_median": "median over queries of the top-k standardised effect",
    "bottom_z_median": "median over queries of the bottom-k standardised effect",
    "top_win_rate_per_token": "top_win_rate with Δ divided by each set's tokens (a length-free comparison)"}
SUMMARY_DOCS = {"method": "ranking method", "n_queries": "queries validated with this method",
                "n_random": "random k-sets (R)", "chance_beats_all": "1 / (R + 1): chance of beating every draw",
                "random_sd_mean": "mean over queries of the random sets' sd of Δ"}
for _name, _doc in STATISTIC_DOCS.items():
    SUMMARY_DOCS.update({_name: _doc, f"{_name}_low": f"{_name}: 95% interval, low (crossed bootstrap over "
                         "queries and random draws)", f"{_name}_high": f"{_name}: 95% interval, high"})
for _name, _null in validation_statistics.NULLS.items():
    _null_text = "chance_beats_all" if _null == "chance" else _null
    SUMMARY_DOCS[f"{_name}_p"] = f"{_name}: interval p of no effect ({_null_text}), from the crossed bootstrap"
for _name, _unit in validation_statistics.EXACT.items():
    SUMMARY_DOCS.update({f"{_name}_exact_low": f"{_name}: exact Clopper–Pearson 95% interval, low (successes over "
                         f"{'queries' if _unit == 'queries' else '(query, random set) pairs, ties ½ rounded down'})",
                         f"{_name}_exact_high": f"{_name}: exact Clopper–Pearson 95% interval, high"})
SUMMARY_DOCS.update({"top_tokens_mean": "mean tokens in a top-k set",
                     "random_tokens_mean": "mean tokens in a random set (matched to the run's own top-k sets, see "
                                           "precompute/validation/sets.py)"})
assert list(QUERY_DOCS) == validation_statistics.QUERY_COLUMNS
assert list(SUMMARY_DOCS) == validation_statistics.SUMMARY_COLUMNS


def read_validation(run_path: str | None) -> pd.DataFrame | None:
    path = os.path.join(run_path, rundir.ANALYSIS_DIR, VALIDATION_FILE) if run_path else None
    return pd.read_parquet(path) if path and os.path.exists(path) else None


def summaries(run_path: str | None, seed: int, n_resamples: int) -> dict:
    frame = read_validation(run_path)
    tables = validation_statistics.summarize(frame, n_boot=n_resamples, seed=seed)
    tables["settings"] = None if frame is None or frame.empty else {
        "k": int(frame["k"].iloc[0]), "steps": int(frame["steps"].iloc[0]), "lr": float(frame["lr"].iloc[0])}
    return tables


def _shared(ctx) -> dict:
    return ctx.shared("validation", lambda c: summaries(getattr(c.inputs, "run_path", None), c.seed, c.n_resamples))


@table("validation_queries", "per validated query and ranking method: top/bottom-k Δ log p vs the random k-sets",
       QUERY_DOCS)
def validation_queries(ctx) -> pd.DataFrame:
    return _shared(ctx)["validation_queries"]


@table("validation_summary", "per ranking method: top/bottom-k Δ log p vs random k-sets over queries, 95% intervals",
       SUMMARY_DOCS)
def validation_summary_table(ctx) -> pd.DataFrame:
    return _shared(ctx)["validation_summary"]


def method_findings(row: pd.Series, settings: dict) -> list[Finding]:
    """Top-k beats random, bottom-k below random, and the standardised effect, for one ranking method."""
    method, k, r = row["method"], settings["k"], int(row["n_random"])
    step = f"{settings['steps']} SGD step(s) at lr {settings['lr']:.3g}"
    chance = float(row["chance_beats_all"])
    common = dict(paper_direction="greater", measure="difference", p_value=math.nan, p_value_method="none",
                  n=int(row["n_queries"]))
    tokens = (f"top sets {row['top_tokens_mean']:.0f} tokens on average, random sets {row['random_tokens_mean']:.0f}; "
              f"win rate per set-token {percent(row, 'top_win_rate_per_token')}")
    out = [share_finding(
        row, "top", f"{FINDING_PREFIX}{method}.top_beats_random", chance,
        f"Training ({step}) on a query's top-{k} documents by {method} raises log p(completion) more than all {r} "
        f"random {k}-document sets, more often than chance.",
        {"win_rate": row["top_win_rate"], "win_rate_exact_low": row["top_win_rate_exact_low"],
         "win_rate_exact_high": row["top_win_rate_exact_high"], "win_rate_per_token": row["top_win_rate_per_token"],
         "mean_top_delta": row["top_delta_mean"], "mean_random_delta": row["random_delta_mean"],
         "top_tokens_mean": row["top_tokens_mean"], "random_tokens_mean": row["random_tokens_mean"]},
        [f"win rate {percent(row, 'top_win_rate')}", tokens], common),
        Finding(
        name=f"{FINDING_PREFIX}{method}.standardised_effect",
        claim=f"A query's top-{k} documents by {method} move its log p(completion) further up than random sets do.",
        effect_label="median (top Δ − mean random Δ) / sd random Δ", effect=row["top_z_median"],
        ci_low=row["top_z_median_low"], ci_high=row["top_z_median_high"], interval_p=row["top_z_median_p"],
        parts={"bottom_z_median": row["bottom_z_median"]}, notes=["interval: crossed bootstrap over queries and "
                                                                  "random sets"], **common)]
    if not math.isnan(row["frac_bottom_below_all"]):
        out.append(share_finding(
            row, "bottom", f"{FINDING_PREFIX}{method}.bottom_below_random", chance,
            f"Training on a query's bottom-{k} documents by {method} leaves log p(completion) below all {r} random "
            "sets, more often than chance.",
            {"win_rate": row["bottom_win_rate"], "win_rate_exact_low": row["bottom_win_rate_exact_low"],
             "win_rate_exact_high": row["bottom_win_rate_exact_high"], "mean_bottom_delta": row["bottom_delta_mean"]},
            [f"win rate {percent(row, 'bottom_win_rate')}"], common))
    return out


def percent(row: pd.Series, name: str) -> str:
    """A share with its exact interval, e.g. "100% [97.3, 100] (exact)"."""
    return (f"{100 * row[name]:.1f}% [{100 * row[f'{name}_exact_low']:.1f}, {100 * row[f'{name}_exact_high']:.1f}] "
            "(exact)")


def share_finding(row, side, name, chance, claim, parts, notes, common) -> Finding:
    """Share of queries beating (or below) every random set minus chance. Interval: the crossed bootstrap's,
    widened to hold the exact Clopper–Pearson interval (a bootstrap of 17/17 collapses to [1, 1]); interval p:
    the larger of the bootstrap's and the exact binomial one."""
    column = "frac_top_beats_all" if side == "top" else "frac_bottom_below_all"
    share, n = float(row[column]), int(row["n_queries"])
    low = min(row[f"{column}_low"], row[f"{column}_exact_low"])
    high = max(row[f"{column}_high"], row[f"{column}_exact_high"])
    exact_p = validation_statistics.exact_p_value(int(round(share * n)), n, chance)
    return Finding(
        name=name, claim=claim, effect_label=f"share of queries {'beating' if side == 'top' else 'below'} every "
                                             f"random set minus chance {chance:.3f}",
        effect=share - chance, ci_low=low - chance, ci_high=high - chance,
        interval_p=max(float(row[f"{column}_p"]), exact_p),
        parts={"share": share, "chance": chance, **parts},
        notes=["interval: crossed bootstrap over queries and random sets, widened to the exact binomial interval",
               *notes], **common)


def build_findings(tables: dict) -> list[Finding]:
    if tables["settings"] is None:
        return []
    return [finding for _, row in tables["validation_summary"].iterrows()
            for finding in method_findings(row, tables["settings"])]


@findings("validation")
def validation_findings(ctx) -> list[Finding]:
    return build_findings(_shared(ctx))


def refresh(run: rundir.RunDir, seed: int = statistics.DEFAULT_SEED,
            n_resamples: int = statistics.N_RESAMPLES) -> dict:
    """After `validate`: rewrite the two validation tables and the validation records of findings.json (other
    records kept), without recomputing the rest of the analysis."""
    tables = summaries(run.path, seed, n_resamples)
    for name in ("validation_queries", "validation_summary"):
        rundir.write_parquet(run.file(rundir.ANALYSIS_DIR, f"{name}.parquet"), tables[name])
    from precompute.analysis.runner import replace_findings
    replace_findings(run, FINDING_PREFIX, [finding.record() for finding in build_findings(tables)])
    return tables
