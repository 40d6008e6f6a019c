"""Distinctive terms: which words and phrases (1–3-grams) set one set of documents apart from another (a query's
top k from the corpus, its bottom k from the corpus, top from bottom), by the log-odds ratio with an informative
Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' words", eq. 16–22) and its z-score.

Terms: the text is lower-cased; every run of characters that are neither letters, apostrophes nor white space
(digits and punctuation) breaks phrases, so a term is 1–3 consecutive words of letters (apostrophes inside words
kept). A term may not start or end with an English stop word (bm25s' Lucene list, the one the BM25 baseline
uses): "the answer is" counts as "answer", "rise over run" stays a phrase. Tokenising is vectorised with pyarrow
(RE2), so counting a corpus is one pass in C++ per chunk of texts.

The statistic, for term w with counts y_a, y_b in groups a and b of n_a, n_b term occurrences and a prior
α_w = α0 · f_w (f_w the term's share of the corpus' term occurrences, α0 = PRIOR_STRENGTH):
    δ_w = log((y_a + α_w) / (n_a + α0 − y_a − α_w)) − log((y_b + α_w) / (n_b + α0 − y_b − α_w))
    σ²_w ≈ 1 / (y_a + α_w) + 1 / (y_b + α_w),   z_w = δ_w / σ_w.
"Top k vs the corpus" compares the chosen documents with the rest of the corpus (the corpus minus them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from bm25s.stopwords import STOPWORDS_EN

MAX_WORDS = 3
PRIOR_STRENGTH = 1000.0   # α0: pseudo-occurrences spread over the terms by their corpus frequency
BREAK = "|"               # stands for any run of digits / punctuation: never part of a term
CHUNK_TEXTS = 50_000      # texts tokenised per pyarrow pass when counting a corpus
STOP_WORDS = frozenset(STOPWORDS_EN)
COMPARISONS = ("top_vs_corpus", "bottom_vs_corpus", "top_vs_bottom")


def _tokens(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Every token of every text in order (words, and BREAK for the runs between them), and each token's text."""
    lowered = pc.utf8_lower(texts)
    spaced = pc.replace_substring_regex(lowered, r"[^\pL\s']+", f" {BREAK} ")
    split = pc.utf8_split_whitespace(spaced)
    owner = pc.list_parent_indices(split).to_numpy()
    return pc.list_flatten(split), owner


def _ngram_table(texts) -> pa.Table:
    """(text, term, n_words) for every occurrence of a term in `texts` (a pyarrow string array or list of str)."""
    texts = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), type=pa.large_string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    tokens, owner = _tokens(texts.fill_null(""))
    is_word = pc.match_substring_regex(tokens, r"^'*\pL").to_numpy(zero_copy_only=False)
    is_stop = pc.is_in(tokens, value_set=pa.array(sorted(STOP_WORDS), type=tokens.type)).to_numpy(zero_copy_only=False)
    pieces = []
    for n in range(1, MAX_WORDS + 1):
        length = len(tokens) - n + 1
        if length <= 0:
            break
        valid = np.ones(length, dtype=bool)
        for offset in range(n):
            valid &= is_word[offset:offset + length] & (owner[offset:offset + length] == owner[:length])
        valid &= ~is_stop[:length] & ~is_stop[n - 1:n - 1 + length]
        where = pa.array(np.flatnonzero(valid))
        parts = [tokens.slice(offset, length).take(where) for offset in range(n)]
        term = parts[0] if n == 1 else pc.binary_join_element_wise(*parts, pa.scalar(" ", type=tokens.type))
        pieces.append(pa.table({"text": pa.array(owner[:length][valid]), "term": term.cast(pa.large_string()),
                                "n_words": pa.array(np.full(int(valid.sum()), n, dtype=np.int8))}))
    if not pieces:
        return pa.table({"text": pa.array([], pa.int64()), "term": pa.array([], pa.large_string()),
                         "n_words": pa.array([], pa.int8())})
    return pa.concat_tables(pieces)


def document_terms(texts) -> pd.DataFrame:
    """Term counts per text: columns text (position in `texts`), term, n_words, count."""
    counted = _ngram_table(texts).group_by(["text", "term", "n_words"]).aggregate([("text", "count")])
    frame = counted.rename_columns(["text", "term", "n_words", "count"]).to_pandas()
    return frame.sort_values(["text", "term"], kind="stable").reset_index(drop=True)


def corpus_terms(texts, min_count: int = 2, chunk: int = CHUNK_TEXTS, progress=None) -> pd.DataFrame:
    """Corpus-wide term statistics: term, n_words, count (occurrences), documents (texts holding it); terms that
    occur fewer than `min_count` times are left out (their corpus count is then taken as their count in the
    documents compared, see `term_frequencies`). Sorted by count (highest first), then term."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    partial = []
    for start in range(0, n, chunk):
        part = texts.slice(start, chunk) if isinstance(texts, pa.Array) else texts[start:start + chunk]
        table = _ngram_table(part).group_by(["text", "term", "n_words"]).aggregate([("text", "count")])
        per_term = table.group_by(["term", "n_words"]).aggregate([("text_count", "sum"), ("text", "count")])
        partial.append(per_term.rename_columns(["term", "n_words", "count", "documents"]))
        if progress is not None:
            progress(min(start + chunk, n))
    if not partial:
        return pd.DataFrame({"term": [], "n_words": [], "count": [], "documents": []})
    merged = pa.concat_tables(partial).group_by(["term", "n_words"]).aggregate([("count", "sum"),
                                                                               ("documents", "sum")])
    frame = merged.rename_columns(["term", "n_words", "count", "documents"]).to_pandas()
    frame = frame[frame["count"] >= min_count]
    frame = frame.astype({"n_words": np.int64, "count": np.int64, "documents": np.int64})
    return frame.sort_values(["count", "term"], ascending=[False, True], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class CorpusTerms:
    """The corpus' term counts, indexed for look-ups (built once per run)."""
    table: pd.DataFrame          # corpus_terms(...)
    n_documents: int

    @cached_property
    def index(self) -> pd.Index:
        return pd.Index(self.table["term"])

    @property
    def total(self) -> int:
        """Term occurrences in the corpus (of the terms kept)."""
        return int(self.table["count"].sum())

    def lookup(self, terms: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """(count, documents) of each term; 0 for terms the table does not hold."""
        position = self.index.get_indexer(terms)
        found = position >= 0
        counts = np.zeros(len(terms), dtype=np.float64)
        documents = np.zeros(len(terms), dtype=np.float64)
        counts[found] = self.table["count"].to_numpy()[position[found]]
        documents[found] = self.table["documents"].to_numpy()[position[found]]
        return counts, documents


def log_odds(counts_a: np.ndarray, counts_b: np.ndarray, prior: np.ndarray, n_a: float | None = None,
             n_b: float | None = None, alpha0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Monroe et al.'s log-odds ratio δ (a over b) with prior pseudo-counts `prior` (α_w) and its z-score. The
    totals n_a, n_b, α0 default to the sums of the given vectors (pass them when the vectors list some terms only)."""
    counts_a, counts_b, prior = (np.asarray(x, dtype=np.float64) for x in (counts_a, counts_b, prior))
    n_a = counts_a.sum() if n_a is None else n_a
    n_b = counts_b.sum() if n_b is None else n_b
    alpha0 = prior.sum() if alpha0 is None else alpha0
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (np.log((counts_a + prior) / (n_a + alpha0 - counts_a - prior))
                 - np.log((counts_b + prior) / (n_b + alpha0 - counts_b - prior)))
        z = delta / np.sqrt(1.0 / (counts_a + prior) + 1.0 / (counts_b + prior))
    return delta, z


def _counts_of(selection: pd.DataFrame) -> pd.DataFrame:
    return selection.groupby(["term", "n_words"], sort=True)["count"].sum().reset_index()


def compare(first: pd.DataFrame, second: pd.DataFrame | None, corpus: CorpusTerms,
            prior_strength: float = PRIOR_STRENGTH) -> pd.DataFrame:
    """Log-odds of every term of `first` (and `second`) between the two document sets, given as document_terms
    frames; `second=None` means the rest of the corpus (corpus counts minus `first`'s; n_b = the corpus' term
occurrences minus n_a). The prior α_w = prior_strength · corpus share, so α0 = prior_strength. Columns: term, n_words,
    count_a, count_b, corpus_count, log_odds, z; sorted by z, highest first."""
    a = _counts_of(first)
    terms = a if second is None else pd.concat([a, _counts_of(second)]).drop_duplicates(["term"])
    index = pd.Index(terms["term"])
    corpus_count, _ = corpus.lookup(index)
    count_a = a.set_index("term")["count"].reindex(index, fill_value=0).to_numpy(dtype=np.float64)
    if second is None:
        corpus_count = np.maximum(corpus_count, count_a)   # a term below the corpus table's min_count
        count_b = corpus_count - count_a
    else:
        count_b = _counts_of(second).set_index("term")["count"].reindex(index, fill_value=0).to_numpy(np.float64)
        corpus_count = np.maximum(corpus_count, count_a + count_b)
    total = max(float(corpus.total), float(corpus_count.sum()))
    prior = prior_strength * corpus_count / total
    n_a = count_a.sum()
    n_b = total - n_a if second is None else count_b.sum()
    delta, z = log_odds(count_a, count_b, prior, n_a, n_b, prior_strength)
    frame = pd.DataFrame({"term": index, "n_words": terms["n_words"].to_numpy(np.int64),
                          "count_a": count_a.astype(np.int64), "count_b": count_b.astype(np.int64),
                          "corpus_count": corpus_count.astype(np.int64), "log_odds": delta, "z": z})
    return frame.sort_values(["z", "term"], ascending=[False, True], kind="stable").reset_index(drop=True)


def selected_terms(texts_of, positions: np.ndarray) -> pd.DataFrame:
    """document_terms of the documents at `positions` (texts_of(positions) -> their texts), `text` renumbered to
    the document positions."""
    positions = np.asarray(positions, dtype=np.int64)
    frame = document_terms(texts_of(positions))
    frame["text"] = positions[frame["text"].to_numpy()] if len(frame) else frame["text"]
    return frame


def distinctive(texts_of, corpus: CorpusTerms, top: np.ndarray, bottom: np.ndarray,
                prior_strength: float = PRIOR_STRENGTH) -> dict[str, pd.DataFrame]:
    """comparison -> `compare` frame, for a top and a bottom set of document positions (COMPARISONS)."""
    top_terms = selected_terms(texts_of, top)
    bottom_terms = selected_terms(texts_of, bottom)
    return {"top_vs_corpus": compare(top_terms, None, corpus, prior_strength),
            "bottom_vs_corpus": compare(bottom_terms, None, corpus, prior_strength),
            "top_vs_bottom": compare(top_terms, bottom_terms, corpus, prior_strength)}


def term_pattern(term: str) -> re.Pattern:
    """Where a term occurs in a text by the tokenising rule above: its words, case-insensitively, separated by
    white space only, not inside a longer word (a digit may touch it: "6x" holds the term "x")."""
    words = [re.escape(word) for word in term.split()]
    return re.compile(r"(?<![^\W\d_])" + r"\s+".join(words) + r"(?![^\W\d_])", re.IGNORECASE)
