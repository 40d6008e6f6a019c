"""A text-retrieval baseline ranking: BM25 (bm25s, Lucene variant) between a query's prompt + completion and
every document. No torch.

Tokens: lower-cased runs of word characters, single characters included (the digits of an arithmetic query
matter), English stop words removed. Ties (e.g. the many documents sharing no term with the query, score 0)
are broken by document index, so the ranking is deterministic.
"""
from __future__ import annotations

import logging

import bm25s
import numpy as np

logging.getLogger("bm25s").setLevel(logging.WARNING)   # bm25s sets its logger to DEBUG on import

TOKEN_PATTERN = r"(?u)\b\w+\b"
STOPWORDS = "en"
K1, B = 1.5, 0.75
BM25_SETTINGS = f"lucene k1={K1} b={B} tokens={TOKEN_PATTERN} stopwords={STOPWORDS} text=prompt+completion"


def bm25s_version() -> str:
    return str(getattr(bm25s, "__version__", "unknown"))


def tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), token_pattern=TOKEN_PATTERN, stopwords=STOPWORDS, return_ids=False,
                          show_progress=False)


class BM25Ranking:
    """The BM25 index of a corpus; `scores(text)` over all documents, `top(text, k)` the k best (ties by index)."""

    def __init__(self, documents: list[str], k1: float = K1, b: float = B):
        self.n_documents = len(documents)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(tokenize(documents), show_progress=False)

    def scores(self, text: str) -> np.ndarray:
        terms = tokenize([text])[0]
        if not terms:
            return np.zeros(self.n_documents, dtype=np.float64)
        return np.asarray(self.retriever.get_scores(terms), dtype=np.float64)

    def top(self, text: str, k: int) -> np.ndarray:
        values = self.scores(text)
        return np.argsort(-values, kind="stable")[:k].astype(np.int64)


def query_text(query: dict) -> str:
    """What BM25 matches for a query: its prompt and its completion."""
    return f"{query.get('prompt', '')} {query.get('completion', '')}".strip()
