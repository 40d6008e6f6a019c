"""Check the distinctive-terms and cluster tools against the demo world's ground truth (the documents' `kind`).

    python scripts/check_themes.py RUN [--k 100] [--clusters 4]

For each reasoning task, with the run's influence ranking and with BM25 (prompt + completion, the baseline of
precompute/analysis/bm25_ranking.py) side by side:
- procedure share: share of a query's top k documents whose `kind` names the task's procedure (mean over the
  task's queries), next to that kind's share of the corpus (what k random documents would give);
- vocabulary hits: how many of the 20 most distinctive terms of the pooled top-k documents (top vs corpus) are
  among the 50 most distinctive terms of the documents of `kind` `procedure:<task>` (this procedure alone; the
  procedure's own vocabulary, found by the same statistic on the ground-truth labels);
- cluster purity against `kind` per query (mean over the task's queries), next to the purity of a random
  assignment with the same cluster sizes (mean of 200 shuffles): purity is high by chance when one kind dominates.
Torch-free; prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from precompute.analysis import clusters, terms  # noqa: E402
from precompute.analysis.ranking import top_columns  # noqa: E402
from precompute.analysis.bm25_ranking import BM25Ranking, query_text  # noqa: E402
from precompute.rundir.reader import read_run  # noqa: E402

REASONING = ("arithmetic", "slope", "linear_equation")
SHOWN, VOCABULARY, SHUFFLES = 20, 50, 200


def chance_purity(cluster: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> float:
    return float(np.mean([clusters.purity(cluster, rng.permutation(truth)) for _ in range(SHUFFLES)]))


def procedure_vocabulary(texts_of, kinds: np.ndarray, task: str, corpus: terms.CorpusTerms) -> set[str]:
    procedure = np.flatnonzero(kinds == f"procedure:{task}")    # this procedure alone (mixed sheets left out)
    found = terms.compare(terms.selected_terms(texts_of, procedure), None, corpus)
    return set(found["term"].head(VOCABULARY))


def evaluate(rankings: dict[str, list[np.ndarray]], texts_of, kinds, scores, corpus, task, n_clusters, rng):
    vocabulary = procedure_vocabulary(texts_of, kinds, task, corpus)
    is_procedure = np.array([k.startswith("procedure:") and task in k for k in kinds])
    rows = []
    for method, tops in rankings.items():
        pooled = np.unique(np.concatenate(tops))
        share = float(np.mean([is_procedure[top].mean() for top in tops]))
        top_terms = terms.compare(terms.selected_terms(texts_of, pooled), None, corpus)["term"].head(SHOWN).tolist()
        purities, chances = [], []
        for top, row in zip(tops, scores):
            found = clusters.cluster_documents(texts_of, top, row[top], np.zeros(len(top), dtype=object), corpus,
                                               n_clusters=n_clusters, seed=0)
            purities.append(clusters.purity(found.cluster, kinds[top]))
            chances.append(chance_purity(found.cluster, kinds[top], rng))
        rows.append({"task": task, "ranking": method, "procedure share": share,
                     "corpus share": float(is_procedure.mean()),
                     f"vocabulary hits (of {SHOWN})": sum(t in vocabulary for t in top_terms),
                     "cluster purity": float(np.mean(purities)), "chance purity": float(np.mean(chances)),
                     "top terms": ", ".join(top_terms[:8])})
    return rows


def markdown(frame: pd.DataFrame) -> str:
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=4)
    args = parser.parse_args(argv)
    run = read_run(args.run)
    texts = run.document_texts().astype(str)
    kinds = pd.read_parquet(Path(args.run) / "documents.parquet", columns=["kind"])["kind"].astype(str).to_numpy()
    corpus_table = run.analysis_table("corpus_terms")
    if corpus_table is None:
        corpus_table = terms.corpus_terms(pa.array(texts.tolist(), type=pa.large_string()))
    corpus = terms.CorpusTerms(corpus_table, run.n_documents)

    def texts_of(positions):
        return texts.iloc[np.asarray(positions, dtype=np.int64)].tolist()

    bm25 = BM25Ranking(texts.tolist())
    rng = np.random.default_rng(0)
    rows = []
    for task in REASONING:
        query_rows = np.flatnonzero(run.queries["task"].astype(str).to_numpy() == task)
        if not len(query_rows):
            continue
        scores = [np.asarray(run.scores[r], dtype=np.float32) for r in query_rows]
        rankings = {"influence": [top_columns(s, args.k) for s in scores],
                    "BM25": [bm25.top(query_text(run.queries.iloc[r].to_dict()), args.k) for r in query_rows]}
        rows += evaluate(rankings, texts_of, kinds, np.asarray(scores), corpus, task, args.clusters, rng)
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
