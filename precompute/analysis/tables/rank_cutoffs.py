"""rank_cutoffs: each query's k-th score and last tied column for the category multipliers' top / bottom k
(label_breakdown.row_cutoffs), so a breakdown of a sparse column (the researcher's labels) reads only the
labelled documents' scores instead of ranking every row again."""
from __future__ import annotations

import pandas as pd

from precompute.analysis import label_breakdown
from precompute.analysis.registry import row_statistic, table
from precompute.analysis.tables import breakdowns


@row_statistic("rank_cutoffs")
def cutoffs(ctx, row):
    return label_breakdown.row_cutoffs(row.values, breakdowns.multiplier_ks(ctx.n_docs))


@table("rank_cutoffs", "per query, side and k of the category multipliers: where the side's first k end",
       label_breakdown.CUTOFF_COLUMNS)
def rank_cutoffs(ctx) -> pd.DataFrame:
    return label_breakdown.cutoff_table(ctx.query_ids, ctx.rows["rank_cutoffs"], breakdowns.multiplier_ks(ctx.n_docs))
