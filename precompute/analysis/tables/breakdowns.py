"""Which kinds of documents rank at the top (or bottom): every low-cardinality document column (source, and any
metadata the corpus carries) broken down per task, side and k, as a multiplier over the column's corpus share,
with a bootstrap interval over queries and the band k random documents would give."""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis import statistics
from precompute.analysis.registry import row_statistic, table

KEY_COLUMNS = {"task": "query task", "side": "`top` or `bottom`",
               "k": "documents per query: 50, 500, 5000, … below D, and D"}
VALUE_COLUMNS = {
    "count": "documents of the category among the task's queries' top/bottom k, summed over queries",
    "share": "count / (k · queries)", "base_share": "the category's share of the corpus",
    "multiplier": "share / base_share",
    "ci_low": "lower end of the 95% interval of the multiplier (bootstrap over the task's queries)",
    "ci_high": "upper end of the 95% interval",
    "chance_low": "2.5% point of the multiplier if each query's k documents were drawn at random (hypergeometric)",
    "chance_high": "97.5% point of that chance band",
}


def multiplier_ks(n_documents: int) -> list[int]:
    """k = 50, 500, 5000, ... below the corpus size, plus the corpus size itself."""
    ks, k = [], 50
    while k < n_documents:
        ks.append(k)
        k *= 10
    return ks + [n_documents]


@row_statistic("category_counts")
def category_counts(ctx, row) -> dict:
    """column -> side -> [len(ks), categories] counts of each category among the top/bottom k."""
    ks = multiplier_ks(ctx.n_docs)
    found = {}
    for column, (codes, names) in ctx.categorical.items():
        found[column] = {}
        for side, order in (("top", row.descending), ("bottom", row.ascending)):
            ranked = codes[order]
            bounds = [0] + ks
            segments = [np.bincount(ranked[a:b], minlength=len(names)) for a, b in zip(bounds, bounds[1:])]
            found[column][side] = np.cumsum(segments, axis=0)
    return found


def share_statistic(counts: np.ndarray, k: int, base: np.ndarray):
    """statistic(w) = multiplier per category, counts [Q, C] per query; vector axis first (scipy's layout)."""
    def statistic(*weights):
        w = sum(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (w @ counts) / (w.sum(axis=-1)[..., None] * k)
            return np.moveaxis(share / base, -1, 0)
    return statistic


def multipliers(ctx, column: str) -> pd.DataFrame:
    codes, names = ctx.categorical[column]
    base_counts = np.bincount(codes, minlength=len(names))
    base = base_counts / max(ctx.n_docs, 1)
    rows = []
    for position, k in enumerate(multiplier_ks(ctx.n_docs)):
        for task, task_rows in ctx.task_rows.items():
            bands = [statistics.hypergeometric_sum_interval([k] * len(task_rows), [m] * len(task_rows), ctx.n_docs)
                     for m in base_counts]
            scale = k * len(task_rows) * base
            for side in ("top", "bottom"):
                counts = np.vstack([found[column][side][position] for found in ctx.rows["category_counts"]])
                statistic = share_statistic(counts.astype(np.float64), k, base)
                multiplier = statistic(np.bincount(task_rows, minlength=ctx.n_queries).astype(np.float64))
                if k == ctx.n_docs or len(task_rows) < 2:
                    low, high = (multiplier, multiplier) if k == ctx.n_docs else (np.nan * multiplier,) * 2
                else:
                    low, high = statistics.bootstrap_interval([task_rows], statistic, ctx.n_queries,
                                                              ctx.rng(f"multipliers/{column}/{task}/{side}/{k}"),
                                                              ctx.n_resamples)
                with np.errstate(invalid="ignore", divide="ignore"):
                    chance = np.asarray(bands, dtype=np.float64) / scale[:, None]
                rows.append(pd.DataFrame({
                    "column": column, "task": task, "side": side, "k": k, "category": names,
                    "count": counts[task_rows].sum(axis=0).astype(np.int64),
                    "share": counts[task_rows].sum(axis=0) / (k * len(task_rows)), "base_share": base,
                    "multiplier": multiplier, "ci_low": low, "ci_high": high,
                    "chance_low": chance[:, 0], "chance_high": chance[:, 1]}))
    return pd.concat(rows, ignore_index=True)


@table("category_multipliers", "per categorical document column (source, and every metadata column with 2..50 "
       "values; `<column>_family` for `family:detail` values), task, side, k and category: over-representation "
       "among the top/bottom k", {"column": "document column", **KEY_COLUMNS, "category": "value of the column",
                                  **VALUE_COLUMNS})
def category_multipliers(ctx) -> pd.DataFrame:
    frames = [ctx.shared(f"multipliers/{column}", lambda c, column=column: multipliers(c, column))
              for column in ctx.categorical]
    if not frames:
        return pd.DataFrame(columns=["column", *KEY_COLUMNS, "category", *VALUE_COLUMNS])
    return pd.concat(frames, ignore_index=True)


@table("source_multipliers", "category_multipliers of the `source` column, in the source page's layout",
       {**KEY_COLUMNS, "source": "document source", **VALUE_COLUMNS})
def source_multipliers(ctx) -> pd.DataFrame:
    if "source" not in ctx.categorical:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "source", *VALUE_COLUMNS])
    frame = ctx.shared("multipliers/source", lambda c: multipliers(c, "source"))
    return frame.drop(columns="column").rename(columns={"category": "source"})
