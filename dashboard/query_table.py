"""The query table: one row per query with what a researcher sorts and filters by. Pure pandas, no Streamlit."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.correctness import is_correct, model_answer, reference_answer
from dashboard.query_filter import filter_rows

ALL = "(all)"
CORRECTNESS = (ALL, "correct", "incorrect", "unknown")
COLUMNS = ("id", "task", "correct", "answer", "model_answer", "nats", "n_completion_tokens", "prompt", "completion")


def one_line(text: str) -> str:
    """Text on one line for a label or a table cell: newlines shown as ⏎."""
    return " ⏎ ".join(part.strip() for part in str(text).splitlines()) if "\n" in str(text) else str(text)


def query_table(queries: pd.DataFrame) -> pd.DataFrame:
    """id, task, correct (bool or None), answer (reference), model_answer (parsed), nats, tokens, prompt, completion,
    plus every other scalar field of queries.jsonl."""
    records = queries.to_dict("records")
    table = pd.DataFrame({
        "id": queries["id"].astype(str),
        "task": queries["task"].astype(str),
        "correct": pd.Series([is_correct(record) for record in records], dtype=object),
        "answer": [reference_answer(r) for r in records],
        "model_answer": [model_answer(r.get("completion", "")) for r in records],
        "nats": pd.to_numeric(queries["nats"], errors="coerce"),
        "n_completion_tokens": pd.to_numeric(queries.get("n_completion_tokens", pd.Series(np.nan, queries.index)),
                                             errors="coerce"),
        "prompt": queries["prompt"].map(one_line),
        "completion": queries["completion"].map(one_line),
    })
    for column in queries.columns:
        if column not in table.columns and column not in ("steps", "context"):
            values = queries[column]
            if values.map(lambda v: v is None or isinstance(v, (str, int, float, bool))).all():
                table[column] = values
    return table


def correctness_label(correct) -> str:
    return "correct" if correct is True else "incorrect" if correct is False else "unknown"


def filtered(table: pd.DataFrame, *, task: str = ALL, correctness: str = ALL, search: str = "",
             expression: str = "") -> pd.DataFrame:
    """Rows of the task, of that correctness, whose id/prompt/completion contain `search`, and where `expression`
    (dashboard.query_filter) holds; raises FilterError for a bad expression."""
    chosen = table if task == ALL else table[table["task"] == task]
    if correctness != ALL:
        chosen = chosen[chosen["correct"].map(correctness_label) == correctness]
    if search:
        text = chosen["id"] + " " + chosen["prompt"] + " " + chosen["completion"]
        chosen = chosen[text.str.contains(search, case=False, regex=False)]
    return filter_rows(chosen, expression)


def filter_expression(*, task: str = ALL, correctness: str = ALL, search: str = "", expression: str = "") -> str:
    """One filter expression (dashboard.query_filter) that keeps the rows `filtered` keeps with these choices (the
    search over each of id, prompt and completion): what a saved query set stores."""
    parts = [] if task == ALL else [f"task == {task!r}"]
    parts += {ALL: [], "correct": ["correct == True"], "incorrect": ["correct == False"],
              "unknown": ["isnull(correct)"]}[correctness]
    if search:
        parts.append(" or ".join(f"contains({column}, {search!r})" for column in ("id", "prompt", "completion")))
    if expression.strip():
        parts.append(expression.strip())
    return parts[0] if len(parts) == 1 else " and ".join(f"({part})" for part in parts)


def sorted_by(table: pd.DataFrame, column: str, descending: bool) -> pd.DataFrame:
    """Stable sort by one column (missing values last)."""
    if column not in table.columns:
        return table
    key = table[column].map(lambda v: -1 if v is None else int(v)) if column == "correct" else None
    order = (key if key is not None else table[column]).sort_values(ascending=not descending, kind="stable",
                                                                    na_position="last").index
    return table.loc[order]
