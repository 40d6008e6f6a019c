"""query_summary against the queries it summarises."""
import numpy as np
import pandas as pd

from precompute import analysis
from precompute.analysis import ranking
from precompute.analysis.context import AnalysisContext
from precompute.analysis.tables.queries import query_summary


def test_query_summary_flags_low_information_and_parses_the_completion():
    queries = [
        {"id": "a", "task": "slope", "answer": "3", "nats": 2.5, "prompt": "",
         "completion": " The change in y is 3 - 0 = 3. The change in x is 2 - 0 = 2. 3 / 2 = 1. The answer is 1."},
        {"id": "b", "task": "factual", "answer": "Marn", "nats": ranking.MIN_NATS / 3, "prompt": "",
         "completion": " The capital of Veloria is Marn."},
        {"id": "c", "task": "reasoning_control", "prompt": "", "completion": " 4"},
    ]
    inputs = analysis.AnalysisInputs(scores=np.zeros((3, 2), np.float32), queries=queries,
                                     documents=pd.DataFrame({"id": ["d0", "d1"], "source": ["web", "web"]}),
                                     doc_texts=["x", "y"])
    table = query_summary(AnalysisContext(inputs, progress=False)).set_index("query_id")
    assert table.loc["a", "completion_answer"] == "1" and table.loc["a", "completion_steps"] == "3 2"
    assert table["correct"].tolist() == [False, True, None]
    assert table["low_information"].tolist() == [False, True, True]      # unknown nats count as too little
    assert table.loc["b", "completion_answer"] == "Marn" and table.loc["c", "reference_answer"] == ""
    assert np.isnan(table.loc["c", "nats"])
