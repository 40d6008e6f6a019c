"""Tables on screen: readable column labels and blank "none" cells (dashboard.column_labels via widgets.table),
while the CSV keeps the frame's own column names and numbers."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard import column_labels
from tests.dashboard.test_pages import PAGES, assert_clean, exported_tables, open_page  # noqa: F401 (fixture)

QUERY_TABLE = "queries.table"  # its headers are the names the filter expression and the sort use


def shown_labels(element) -> dict[str, str]:
    """Each data column of a shown dataframe and the label it is shown under."""
    config = json.loads(element.proto.columns or "{}")
    return {column: (config.get(column) or {}).get("label") or column for column in element.value.columns}


def test_labels_keep_the_callers_and_blank_only_the_sentinels():
    config = column_labels.labelled_config(["first_rank", "percentile", "hidden", "n_matching", "odd_name"],
                                           {"percentile": {"label": "top p%"}, "hidden": None})
    assert config["percentile"] == {"label": "top p%"} and config["hidden"] is None
    assert config["first_rank"]["label"] == "first rank" and "blank: none in the top k" in config["first_rank"]["help"]
    assert config["n_matching"]["label"] == "documents with it" and config["odd_name"] == {"label": "odd name"}
    assert column_labels.label("runs/my_run effect") == "runs/my_run effect"  # a run's path is not snake_case
    frame = pd.DataFrame({"first_rank": [3, -1, 1], "rank_change": [-1, 0, 2], "scaled": [-1.0, np.nan, 0.5]})
    shown = column_labels.with_none_blank(frame)
    assert shown["first_rank"].isna().tolist() == [False, True, False] and shown["first_rank"].dtype == "Int64"
    assert shown["rank_change"].tolist() == [-1, 0, 2] and shown["scaled"].iloc[0] == -1.0  # real values stay
    assert frame["first_rank"].tolist() == [3, -1, 1]                                      # the input is not changed


@pytest.mark.parametrize("page", PAGES)
def test_every_shown_column_has_a_readable_label(page, app_args, run_dir, second_run_dir, exported_tables):
    app_args(run_dir, second_run_dir)
    at = open_page(page, **({"k": "500"} if page == "answers" else {}))
    assert_clean(at)
    for element in at.dataframe:
        if element.proto.placeholder != "":
            raise AssertionError(f"{element.key}: missing values are not shown blank")
        if element.key == QUERY_TABLE:
            continue
        raw = {column: label for column, label in shown_labels(element).items()
               if column_labels.SNAKE_CASE.fullmatch(label)}
        assert not raw, (element.key, raw)
        if "first_rank" in element.value:
            assert not (element.value["first_rank"] == -1).any()
    if page == "answers":  # the CSV keeps the documented -1 and integer columns
        exported = next(frame for name, frame in exported_tables if name.startswith("answer_occurrence"))
        assert (exported["first_rank"] == -1).any() and exported["first_rank"].dtype.kind == "i"
