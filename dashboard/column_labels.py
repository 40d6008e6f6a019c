"""Readable labels for the columns of the tables the dashboard shows, and blank cells for numbers that stand for
"none". widgets.table applies both to every table it shows; its CSV keeps the frame's own column names and numbers.

A column not listed that is a snake_case name reads its underscores as spaces; any other name (already readable,
e.g. "effect [95% CI]", or holding a run's path) is left as it is."""
from __future__ import annotations

import re

import pandas as pd

SNAKE_CASE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)+")

# column name -> (label, help shown on hovering the header; "" for none)
LABELS: dict[str, tuple[str, str]] = {
    "query_id": ("query", ""),
    "doc_id": ("document", ""),
    "task_a": ("task A", ""),
    "task_b": ("task B", ""),
    "mean_pearson": ("mean r", "mean Pearson r of the queries' scores over the pairs"),
    "median_pearson": ("median r", ""),
    "std_pearson": ("sd of r", "standard deviation of r over the pairs"),
    "n_pairs": ("query pairs", "distinct pairs of different queries (a same-task pair counted once)"),
    "ci_low": ("95% CI low", "lower end of the 95% interval; blank: too few queries for an interval"),
    "ci_high": ("95% CI high", "upper end of the 95% interval"),
    "chance_low": ("chance low", "lower end of the 95% range if the documents were drawn at random"),
    "chance_high": ("chance high", "upper end of that range"),
    "base_share": ("share of the corpus", ""),
    "share": ("share of the k", ""),
    "cumulative_mean": ("cumulative influence (mean)", ""),
    "relative_mean": ("share of the total (mean)", ""),
    "per_nat_mean": ("per nat (mean)", "blank: no query of the task has enough completion information (nats)"),
    "per_nat_ci_low": ("per nat 95% CI low", ""),
    "per_nat_ci_high": ("per nat 95% CI high", ""),
    "n_queries": ("queries", ""),
    "n_low_information": ("queries left out of per nat", "completion under the nats floor, or no nats"),
    "slope_mean": ("power-law slope (mean)", ""),
    "slope_ci_low": ("slope 95% CI low", ""),
    "slope_ci_high": ("slope 95% CI high", ""),
    "r2_mean": ("R² (mean)", ""),
    "queries_ranking_it": ("queries ranking it here", "how many of the task's queries have it in this top (bottom) k"),
    "of_queries": ("queries in the task", ""),
    "mean_score": ("mean score", "mean raw score over the task's queries"),
    "raw_score": ("raw score", ""),
    "target_kind": ("target", ""),
    "rate": ("share of queries", "share of the task's queries with at least one top-k document containing it"),
    "chance_rate": ("chance", "the same share expected if the k documents were drawn at random"),
    "n_docs": ("top-k documents with it", ""),
    "first_rank": ("first rank", "rank of the first top-k document containing it; blank: none in the top k"),
    "n_matching": ("documents with it", "documents of the whole corpus containing it"),
    "expected": ("expected by chance", "k · (documents with it) ÷ (corpus size)"),
    "max_hits": ("most possible", "the most top-k documents that can contain it: min(k, documents with it)"),
    "scaled": ("scaled enrichment", "(found − expected) ÷ (most possible − expected), from −1 to 1; blank: no "
               "document contains it"),
    "auc": ("AUC", "how well the score ranks the documents containing it above the others; blank: none does"),
    "in_both_top": ("in both top", ""),
    "rank_other_run": ("rank in the other run", "blank: the document is not in the other run"),
    "rank_change": ("rank change", "rank here − rank there (negative: ranked higher here)"),
    "n_words": ("words", ""),
    "corpus_count": ("in the corpus", "occurrences in the whole corpus"),
    "log_odds": ("log-odds", ""),
    "z": ("z", "log-odds ÷ its standard error"),
    "positive_share": ("share of + influence", ""),
    "top_labelled": ("labelled in the top", ""),
    "top_with_label": ("with the label in the top", ""),
    "top_share": ("share in the top", ""),
    "top_ci_low": ("top 95% CI low", ""),
    "top_ci_high": ("top 95% CI high", ""),
    "sample_labelled": ("labelled in the sample", ""),
    "sample_with_label": ("with the label in the sample", ""),
    "sample_share": ("share in the sample", ""),
    "sample_ci_low": ("sample 95% CI low", ""),
    "sample_ci_high": ("sample 95% CI high", ""),
    "p_value": ("p", "blank: no p-value for this row"),
    "adjusted_verdict": ("verdict after Holm", ""),
    "primary": ("headline claim", ""),
    "primary_adjusted_verdict": ("headline verdict after Holm", ""),
    "null_value": ("no-effect value", ""),
    "interval_p": ("p (bootstrap)", "the p-value the bootstrap interval stands for"),
    "holm_p": ("p after Holm", ""),
    "primary_holm_p": ("p after Holm, headline claims", "blank: not a headline claim"),
    "p_value_method": ("p from", ""),
    "paper_direction": ("paper's direction", ""),
    "effect_label": ("effect measure", ""),
    "n": ("n", "queries"),
}
# columns where a number stands for "none" (blank on screen; the CSV keeps the number, as documented)
NONE_VALUES: dict[str, int] = {"first_rank": -1}


def label(column: str) -> str:
    """The label a column is shown under."""
    if column in LABELS:
        return LABELS[column][0]
    return str(column).replace("_", " ") if SNAKE_CASE.fullmatch(str(column)) else str(column)


def column_help(column: str) -> str | None:
    return (LABELS[column][1] or None) if column in LABELS else None


def with_none_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the NONE_VALUES sentinels as missing values (shown blank), integers kept as integers."""
    found = [c for c, value in NONE_VALUES.items() if c in frame.columns and (frame[c] == value).any()]
    if not found:
        return frame
    shown = frame.copy()
    for column in found:
        values = shown[column].astype("Int64") if shown[column].dtype.kind in "iu" else shown[column]
        shown[column] = values.mask(values == NONE_VALUES[column])
    return shown


def labelled_config(columns, column_config: dict | None) -> dict:
    """column_config with every column labelled: a caller's label (a string, or a config with a label) stays, a
    hidden column (None) stays hidden, any other column gets label() and column_help()."""
    config = dict(column_config or {})
    for column in columns:
        given = config.get(column, {})
        if given is None or isinstance(given, str) or (isinstance(given, dict) and given.get("label")):
            continue
        config[column] = {**given, "label": label(column)} | (
            {"help": column_help(column)} if column_help(column) and not given.get("help") else {})
    return config
