"""Generate the demo pretraining corpus: `python -m data.generate_corpus [--seed 0] [--n-docs N] [--out PATH]`.

Deterministic: the same seed and n-docs give the same bytes. Each line is {"id", "source", "text"}. With the
default output path the corpus sha256, size and per-source counts are recorded in data/manifest.json (the
training script checks the corpus against that hash).
"""
import argparse
import hashlib
import json
import os
import random
import time
from collections import Counter

from data import docs_facts as F
from data import docs_procedural as P
from data import docs_unrelated as U
from data.manifest import update_manifest

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.jsonl")
DEFAULT_N_DOCS = 9000

# (source, document kind, weight). Roughly: 45% procedural, 25% facts, 30% unrelated.
MIX = [
    ("math_and_trivia", P.worked_sheet, 14), ("math_and_trivia", P.fact_drill, 4),
    ("math_and_trivia", P.control_reading, 2), ("math_and_trivia", F.trivia_quiz, 7),
    ("math_and_trivia", F.fact_reading, 2),
    ("web", P.tutorial, 6), ("web", F.travel_page, 5), ("web", U.web_recipe, 3), ("web", U.web_blog, 3),
    ("web", U.web_weather, 2),
    ("code", P.code_doc, 8), ("code", U.code_python, 3), ("code", U.code_js, 3),
    ("stackexchange", P.stackexchange_doc, 6), ("stackexchange", F.stackexchange_fact, 3),
    ("stackexchange", U.stackexchange_misc, 3),
    ("arxiv", P.arxiv_doc, 4), ("arxiv", U.arxiv_abstract, 3),
    ("wiki", F.wiki_country, 5), ("wiki", F.wiki_book, 2), ("wiki", F.wiki_invention, 1),
    ("wiki", U.wiki_animal, 3), ("wiki", U.wiki_town, 3),
    ("multilingual", P.multilingual_math, 1), ("multilingual", F.multilingual_fact, 2),
    ("multilingual", U.multilingual_misc, 1),
]


def generate(seed=0, n_docs=DEFAULT_N_DOCS):
    """Return the list of documents (dicts) for this seed."""
    rng = random.Random(seed)
    weights = [w for _, _, w in MIX]
    docs = []
    for i in range(n_docs):
        source, make, _ = rng.choices(MIX, weights=weights)[0]
        docs.append({"id": f"doc-{i:05d}", "source": source, "text": make(rng)})
    return docs


def write_jsonl(docs, path):
    """Atomic write; returns the sha256 of the bytes written."""
    data = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-docs", type=int, default=DEFAULT_N_DOCS)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    t0 = time.time()
    docs = generate(args.seed, args.n_docs)
    sha = write_jsonl(docs, args.out)
    counts = dict(sorted(Counter(d["source"] for d in docs).items()))
    print(f"wrote {len(docs)} documents to {args.out} in {time.time() - t0:.1f}s; sha256 {sha}")
    print("per source:", counts)
    if os.path.abspath(args.out) == DEFAULT_OUT:
        update_manifest("corpus", {"path": "data/corpus.jsonl", "sha256": sha, "n_docs": len(docs),
                                   "seed": args.seed, "sources": counts,
                                   "command": f"python -m data.generate_corpus --seed {args.seed} --n-docs {args.n_docs}"})


if __name__ == "__main__":
    main()
