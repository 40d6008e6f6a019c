"""Compare-runs numbers against a direct recomputation: Pearson over shared documents and top-k overlap."""
import numpy as np
import pandas as pd
import pytest

from dashboard.run import read_run
from dashboard.views.compare import per_query_agreement


def test_agreement_matches_numpy(run_dir, second_run_dir):
    a, b = read_run(run_dir), read_run(second_run_dir)
    table = per_query_agreement(a.key, b.key, 50, a, b)
    shared = [q for q in a.queries["id"] if q in set(b.queries["id"])]
    assert table["query_id"].tolist() == shared and len(shared) > 0
    common = pd.Index(a.doc_ids).intersection(pd.Index(b.doc_ids))
    cols_a = pd.Index(a.doc_ids).get_indexer(common)
    cols_b = pd.Index(b.doc_ids).get_indexer(common)
    for query_id, pearson, overlap in table[["query_id", "pearson", "top_50_overlap"]].itertuples(index=False):
        x = np.asarray(a.scores[a.query_row(query_id)])[cols_a].astype(np.float64)
        y = np.asarray(b.scores[b.query_row(query_id)])[cols_b].astype(np.float64)
        assert pearson == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
        top_x, top_y = set(common[np.argsort(-x)[:50]]), set(common[np.argsort(-y)[:50]])
        assert overlap == pytest.approx(len(top_x & top_y) / 50)
