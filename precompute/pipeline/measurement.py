"""Which completion tokens a run measures (Settings.measurement, engine.task): the one place queries are
tokenized for the task — scoring, the index's checks, Ask, validation and the counterfactual all call it."""
from __future__ import annotations


def measured_query_tokens(tokenizer, prompts: list[str], completions: list[str], answers: list, max_length: int,
                          measurement: str) -> list:
    """engine.batches.tokenize_queries with each completion's measured span from the task `measurement`
    (EngineInputError naming the query's position when its answer cannot be measured)."""
    from engine.batches import tokenize_queries
    from engine.errors import EngineInputError
    from engine.task import TASKS

    task, spans = TASKS[measurement], []
    for number, (completion, answer) in enumerate(zip(completions, answers)):
        try:
            spans.append(task.measured_span(completion, answer))
        except EngineInputError as error:
            raise EngineInputError(f"query {number}: {error}", field=error.field) from None
    return tokenize_queries(tokenizer, prompts, completions, max_length, spans)


def answers_of(records) -> list:
    """Each record's `answer` (None where it has none): a list of dicts or a DataFrame."""
    if hasattr(records, "columns"):
        values = records["answer"].tolist() if "answer" in records.columns else [None] * len(records)
    else:
        values = [record.get("answer") for record in records]
    return [None if value is None or value != value else value for value in values]   # NaN: no answer
