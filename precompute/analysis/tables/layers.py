"""layer_share: which tracked layers carry a task's influence."""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analysis.registry import row_statistic, table


@row_statistic("layer_share")
def layer_share_row(ctx, row) -> np.ndarray | None:
    """Each layer's share of the query's total absolute influence (None without layer scores)."""
    if ctx.inputs.layer_scores is None:
        return None
    per_layer = np.abs(np.asarray(ctx.inputs.layer_scores[row.index], dtype=np.float32)).sum(axis=1, dtype=np.float64)
    total = per_layer.sum()
    return per_layer / total if total > 0 else np.full(len(per_layer), np.nan)


@table("layer_share", "per task and layer: mean share of the absolute influence", {
    "task": "query task", "layer_index": "position on the layer axis", "layer": "module name (layers.json)",
    "share": "mean over the task's queries of Σ_d |s_qld| / Σ_l Σ_d |s_qld|"})
def layer_share(ctx) -> pd.DataFrame:
    columns = ["task", "layer_index", "layer", "share"]
    found = ctx.rows["layer_share"]
    if not found or found[0] is None:
        return pd.DataFrame(columns=columns)
    shares = np.vstack(found)
    names = ctx.inputs.layer_names or [str(i) for i in range(shares.shape[1])]
    rows = []
    for task, task_rows in ctx.task_rows.items():
        mean = np.nanmean(shares[task_rows], axis=0)
        rows += [(task, index, names[index], float(mean[index])) for index in range(shares.shape[1])]
    return pd.DataFrame(rows, columns=columns)
