"""corpus_terms and distinctive_terms: the words and phrases that set each query's top (bottom) documents apart
from the corpus and from each other, per query and pooled per task (precompute/analysis/terms.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute.analysis import terms
from precompute.analysis.registry import table

TERMS_PER_END = 30    # rows kept per (scope, key, comparison) at each end of the z ranking
CORPUS_COLUMNS = {"term": "1–3 words, lower-cased (terms.py: digits and punctuation break phrases; no stop word "
                          "at either end)",
                  "n_words": "words in the term", "count": "occurrences in the corpus",
                  "documents": "documents holding the term"}
COLUMNS = {
    "scope": "`query` (one query's top/bottom k) or `task` (the union of the task's queries' top/bottom k)",
    "key": "the query id or the task", "task": "query task",
    "comparison": "`top_vs_corpus`, `bottom_vs_corpus` (the k documents against the rest of the corpus) or "
                  "`top_vs_bottom`",
    "end": "`over` (the terms most characteristic of the first set, highest z) or `under` (lowest z)",
    "rank": "1.. within the end", "term": "the term", "n_words": "words in the term",
    "count_a": "occurrences in the first set", "count_b": "occurrences in the second set (the rest of the corpus)",
    "corpus_count": "occurrences in the corpus",
    "log_odds": "log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008)",
    "z": "log_odds / its standard deviation",
}


def _count_corpus(ctx) -> terms.CorpusTerms:
    with tqdm(total=ctx.n_docs, desc="corpus terms", unit="doc", disable=not ctx.progress) as bar:
        table = terms.corpus_terms(ctx.search.texts, progress=lambda done: bar.update(done - bar.n))
    return terms.CorpusTerms(table, ctx.n_docs)


def corpus(ctx) -> terms.CorpusTerms:
    return ctx.shared("terms/corpus", _count_corpus)


@table("corpus_terms", "per term (1–3-gram) occurring at least twice in the corpus: its counts", CORPUS_COLUMNS)
def corpus_terms(ctx) -> pd.DataFrame:
    return corpus(ctx).table[list(CORPUS_COLUMNS)]


def _ends(scope: str, key: str, task: str, comparisons: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
    frames = []
    for comparison, frame in comparisons.items():
        for end, rows in (("over", frame.head(TERMS_PER_END)), ("under", frame.tail(TERMS_PER_END)[::-1])):
            rows = rows.copy()
            rows.insert(0, "rank", np.arange(1, len(rows) + 1))
            for name, value in (("end", end), ("comparison", comparison), ("task", task), ("key", key),
                                ("scope", scope)):
                rows.insert(0, name, value)
            frames.append(rows)
    return frames


@table("distinctive_terms", f"per query and per task, comparison and end: the {TERMS_PER_END} terms with the "
       "highest (lowest) log-odds z-score between the top / bottom k documents and the corpus or each other",
       COLUMNS)
def distinctive_terms(ctx) -> pd.DataFrame:
    corpus_counts = corpus(ctx)
    chosen = ctx.rows["top_docs"]
    frames = []
    for index, (top, bottom) in enumerate(chosen):
        found = terms.distinctive(ctx.search.take, corpus_counts, top, bottom)
        frames += _ends("query", str(ctx.query_ids[index]), str(ctx.tasks[index]), found)
    for task, rows in ctx.task_rows.items():
        top = np.unique(np.concatenate([chosen[row][0] for row in rows]))
        bottom = np.unique(np.concatenate([chosen[row][1] for row in rows]))
        frames += _ends("task", task, task, terms.distinctive(ctx.search.take, corpus_counts, top, bottom))
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]
