"""The document card shows the corpus' ground-truth `kind` (the demo's documents say which procedure they teach)
when the documents have that column, and nothing in its place otherwise."""
import shutil

import pandas as pd

from dashboard import highlight
from dashboard.query_view import ground_truth_kind
from dashboard.run import read_run
from dashboard.widgets import card_badges


def test_the_card_shows_the_kind_badge_only_when_known():
    marks = highlight.target_marks("so x = 12", [("answer", "12")], context=[])
    assert card_badges("math", marks, "procedure:slope") == (
        ":gray-badge[math] :blue-badge[kind procedure\\:slope] :green-badge[answer in context]")
    assert card_badges("math", marks) == ":gray-badge[math] :green-badge[answer in context]"


def test_ground_truth_kind_reads_the_documents_column(run_dir, tmp_path):
    assert ground_truth_kind(read_run(run_dir), 0) == ""          # the synthetic corpus has no `kind`
    copy = tmp_path / "with_kind"
    shutil.copytree(run_dir, copy)
    documents = pd.read_parquet(copy / "documents.parquet")
    documents["kind"] = ["procedure:slope" if i == 2 else None for i in range(len(documents))]
    documents.to_parquet(copy / "documents.parquet")
    run = read_run(copy)
    assert ground_truth_kind(run, 2) == "procedure:slope" and ground_truth_kind(run, 3) == ""
