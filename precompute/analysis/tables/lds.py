"""Counterfactual leaderboard (`precompute counterfactual`): the linear datamodeling score of every ranking method
against the PBRF response, from RUN/analysis/counterfactual.parquet when the run has one (empty tables otherwise).

LDS per query = Spearman across the M random sets of measured Δ log p vs Σ_{d∈S} score(q, d) (precompute.analysis.
lds). Over queries: the mean, a 95% percentile interval from a crossed bootstrap over queries and sets (both
resampled), per task too, and each method's paired difference from the identity (gradient dot product) run when
one is compared. Unlike tail-patch validation (one SGD step, which rewards the plain dot product by construction),
the PBRF response is what damped influence functions estimate, so EK-FAC can win or lose here fairly.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from precompute import rundir
from precompute.analysis import statistics
from precompute.analysis.lds import crossed_bootstrap_lds, lds_per_query
from precompute.analysis.registry import findings, table
from precompute.analysis.statistics import Finding

COUNTERFACTUAL_FILE = rundir.COUNTERFACTUAL
FINDING_PREFIX = "counterfactual."
IDENTITY = "identity"
ALL_TASKS = "all"
QUERY_DOCS = {"query_id": "query id", "task": "query task", "method": "ranking method",
              "lds": "Spearman across sets of measured PBRF Δ log p vs Σ_{d∈S} score (NaN: constant column)",
              "n_sets": "random document sets M"}
SUMMARY_DOCS = {
    "method": "ranking method", "task": f"query task, or '{ALL_TASKS}'",
    "n_queries": "queries with a defined LDS", "n_sets": "random document sets M",
    "lds_mean": "mean LDS over queries", "lds_low": "95% interval, low (crossed bootstrap over queries and sets)",
    "lds_high": "95% interval, high",
    "minus_identity": "mean LDS minus the identity method's, paired (NaN without an identity run)",
    "minus_identity_low": "its 95% interval, low (same resamples)", "minus_identity_high": "its 95% interval, high",
    "lds_p": "two-sided bootstrap p of mean LDS = 0, matched to the interval (statistics.interval_p_value)",
    "minus_identity_p": "the same for the difference from identity"}


def read_counterfactual(run_path: str | None) -> pd.DataFrame | None:
    path = os.path.join(run_path, rundir.ANALYSIS_DIR, COUNTERFACTUAL_FILE) if run_path else None
    return pd.read_parquet(path) if path and os.path.exists(path) else None


def matrices(frame: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray, dict[str, np.ndarray]]:
    """(query ids, tasks, measured [M, Q], predicted per method [M, Q]) from the long table."""
    methods = list(dict.fromkeys(frame["method"]))
    first = frame[frame["method"] == methods[0]]
    measured = first.pivot(index="set", columns="query_id", values="measured")
    query_ids = list(measured.columns)
    tasks = first.drop_duplicates("query_id").set_index("query_id").loc[query_ids, "task"].astype(str).tolist()
    predicted = {m: frame[frame["method"] == m].pivot(index="set", columns="query_id", values="predicted")
                 .loc[measured.index, query_ids].to_numpy(np.float64) for m in methods}
    return query_ids, tasks, measured.to_numpy(np.float64), predicted


def summarize(frame: pd.DataFrame | None, n_boot: int, seed: int) -> dict:
    if frame is None or frame.empty:
        return {"lds_queries": pd.DataFrame(columns=list(QUERY_DOCS)),
                "lds_summary": pd.DataFrame(columns=list(SUMMARY_DOCS)), "methods": []}
    query_ids, tasks, measured, predicted = matrices(frame)
    methods = list(predicted)
    per_query = pd.concat([pd.DataFrame({"query_id": query_ids, "task": tasks, "method": m,
                                         "lds": lds_per_query(measured, predicted[m]), "n_sets": len(measured)})
                           for m in methods], ignore_index=True)
    rows = []
    tasks_array = np.asarray(tasks)
    for task in [ALL_TASKS] + sorted(set(tasks)):
        columns = np.arange(len(tasks)) if task == ALL_TASKS else np.flatnonzero(tasks_array == task)
        rows += task_rows(task, measured[:, columns], {m: p[:, columns] for m, p in predicted.items()}, n_boot,
                          seed)
    return {"lds_queries": per_query[list(QUERY_DOCS)], "lds_summary": pd.DataFrame(rows)[list(SUMMARY_DOCS)],
            "methods": methods}


def task_rows(task: str, measured: np.ndarray, predicted: dict[str, np.ndarray], n_boot: int, seed: int) -> list:
    methods = list(predicted)
    point = {m: lds_per_query(measured, p) for m, p in predicted.items()}
    boot = crossed_bootstrap_lds(measured, [predicted[m] for m in methods], n_boot, seed)
    low, high = statistics.percentile_interval(boot.T)
    identity = methods.index(IDENTITY) if IDENTITY in methods else None
    rows = []
    for n, method in enumerate(methods):
        row = {"method": method, "task": task, "n_queries": int(np.isfinite(point[method]).sum()),
               "n_sets": int(measured.shape[0]), "lds_mean": _mean(point[method]), "lds_low": float(low[n]),
               "lds_high": float(high[n]), "minus_identity": np.nan, "minus_identity_low": np.nan,
               "minus_identity_high": np.nan, "lds_p": statistics.interval_p_value(boot[:, n], 0.0),
               "minus_identity_p": np.nan}
        if identity is not None and n != identity:
            paired = np.isfinite(point[method]) & np.isfinite(point[IDENTITY])
            difference = boot[:, n] - boot[:, identity]
            d_low, d_high = statistics.percentile_interval(difference)
            row.update(minus_identity=_mean(point[method][paired] - point[IDENTITY][paired]),
                       minus_identity_low=float(d_low), minus_identity_high=float(d_high),
                       minus_identity_p=statistics.interval_p_value(difference, 0.0))
        rows.append(row)
    return rows


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def _shared(ctx) -> dict:
    return ctx.shared("lds", lambda c: summarize(read_counterfactual(getattr(c.inputs, "run_path", None)),
                                                 c.n_resamples, c.seed))


@table("lds_queries", "per query and ranking method: LDS against the PBRF response across the random sets",
       QUERY_DOCS)
def lds_queries(ctx) -> pd.DataFrame:
    return _shared(ctx)["lds_queries"]


@table("lds_summary", "per ranking method and task: mean LDS with 95% interval, and its difference from identity",
       SUMMARY_DOCS)
def lds_summary(ctx) -> pd.DataFrame:
    return _shared(ctx)["lds_summary"]


def build_findings(tables: dict, own: str | None) -> list[Finding]:
    summary = tables["lds_summary"]
    if summary.empty:
        return []
    overall = summary[summary["task"] == ALL_TASKS].set_index("method")
    own = own if own in overall.index else overall.index[0]
    row = overall.loc[own]
    common = dict(measure="difference", p_value=np.nan, n=int(row["n_queries"]),
                  p_value_method="none (interval: crossed bootstrap over queries and sets)")
    sets = int(row["n_sets"])
    out = [Finding(
        name=f"{FINDING_PREFIX}{own}.lds_above_zero",
        claim=f"{own}'s scores predict the PBRF response to up-weighting random document sets (LDS > 0).",
        effect_label=f"mean LDS over queries (Spearman across {sets} sets)", paper_direction="greater",
        effect=row["lds_mean"], ci_low=row["lds_low"], ci_high=row["lds_high"], interval_p=row["lds_p"], **common)]
    if IDENTITY in overall.index and own != IDENTITY:
        out.append(Finding(
            name=f"{FINDING_PREFIX}{own}_vs_identity",
            claim=f"{own} ranks documents better than a gradient dot product (LDS against the PBRF response).",
            effect_label=f"mean LDS {own} minus identity (paired)", paper_direction="greater",
            effect=row["minus_identity"], ci_low=row["minus_identity_low"], ci_high=row["minus_identity_high"],
            interval_p=row["minus_identity_p"],
            parts={own: row["lds_mean"], IDENTITY: overall.loc[IDENTITY, "lds_mean"]}, **common))
    return out


def own_method(run_path: str | None) -> str | None:
    """The run's own strategy (its method name in the table), from its manifest."""
    path = os.path.join(run_path, rundir.MANIFEST) if run_path else None
    manifest = rundir.read_json(path) if path and os.path.exists(path) else {}
    return str(manifest.get("strategy") or "") or None


@findings("counterfactual", order=150)
def lds_findings(ctx) -> list[Finding]:
    return build_findings(_shared(ctx), own_method(getattr(ctx.inputs, "run_path", None)))


def refresh(run: rundir.RunDir, seed: int = statistics.DEFAULT_SEED,
            n_resamples: int = statistics.N_RESAMPLES) -> dict:
    """After `counterfactual`: rewrite the LDS tables and the counterfactual records of findings.json (others
    kept), without recomputing the rest of the analysis."""
    tables = summarize(read_counterfactual(run.path), n_resamples, seed)
    for name in ("lds_queries", "lds_summary"):
        rundir.write_parquet(run.file(rundir.ANALYSIS_DIR, f"{name}.parquet"), tables[name])
    from precompute.analysis.runner import replace_findings
    replace_findings(run, FINDING_PREFIX, [f.record() for f in build_findings(tables, own_method(run.path))])
    return tables
