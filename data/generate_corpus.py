"""Generate the demo pretraining corpus: `python -m data.generate_corpus [--seed 0] [--n-docs N] [--out PATH]`.

Deterministic: the same seed and n-docs give the same bytes. Each line is {"id", "source", "text", "kind"}:
`kind` is the document's ground truth (`procedure:<task>[+<task>...]`, `drill:<operation>`, `fact:<subject>[+...]`,
`copy:fact`, `unrelated`), metadata the training script ignores. With the default output path the corpus sha256,
size and per-source counts are recorded in data/manifest.json (the training script checks the corpus against that
hash), plus `sha256_without_kind`: the hash of the same lines without `kind`, i.e. of the exact file the committed
model was trained on before `kind` was added (its texts are byte-identical).
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


def unrelated(make):
    """An unrelated-filler document function as (text, "unrelated")."""
    def document(rng):
        return make(rng), "unrelated"
    document.__name__ = make.__name__
    return document


# (source, document function, weight). Roughly: 45% procedural, 25% facts, 30% unrelated.
MIX = [
    ("math_and_trivia", P.worked_sheet, 14), ("math_and_trivia", P.fact_drill, 4),
    ("math_and_trivia", P.control_reading, 2), ("math_and_trivia", F.trivia_quiz, 7),
    ("math_and_trivia", F.fact_reading, 2),
    ("web", P.tutorial, 6), ("web", F.travel_page, 5), ("web", unrelated(U.web_recipe), 3),
    ("web", unrelated(U.web_blog), 3), ("web", unrelated(U.web_weather), 2),
    ("code", P.code_doc, 8), ("code", unrelated(U.code_python), 3), ("code", unrelated(U.code_js), 3),
    ("stackexchange", P.stackexchange_doc, 6), ("stackexchange", F.stackexchange_fact, 3),
    ("stackexchange", unrelated(U.stackexchange_misc), 3),
    ("arxiv", P.arxiv_doc, 4), ("arxiv", unrelated(U.arxiv_abstract), 3),
    ("wiki", F.wiki_country, 5), ("wiki", F.wiki_book, 2), ("wiki", F.wiki_invention, 1),
    ("wiki", unrelated(U.wiki_animal), 3), ("wiki", unrelated(U.wiki_town), 3),
    ("multilingual", P.multilingual_math, 1), ("multilingual", F.multilingual_fact, 2),
    ("multilingual", unrelated(U.multilingual_misc), 1),
]


def generate(seed=0, n_docs=DEFAULT_N_DOCS):
    """Return the list of documents (dicts) for this seed."""
    rng = random.Random(seed)
    weights = [w for _, _, w in MIX]
    docs = []
    for i in range(n_docs):
        source, make, _ = rng.choices(MIX, weights=weights)[0]
        text, kind = make(rng)
        docs.append({"id": f"doc-{i:05d}", "source": source, "text": text, "kind": kind})
    return docs


def jsonl_bytes(docs, fields=("id", "source", "text", "kind")):
    return "".join(json.dumps({k: d[k] for k in fields if k in d}, ensure_ascii=False) + "\n"
                   for d in docs).encode("utf-8")


def sha256_without_kind(docs):
    """sha256 of the corpus file as written before documents carried `kind` (same ids, sources, texts)."""
    return hashlib.sha256(jsonl_bytes(docs, ("id", "source", "text"))).hexdigest()


def write_jsonl(docs, path):
    """Atomic write; returns the sha256 of the bytes written."""
    data = jsonl_bytes(docs)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def kind_families(docs):
    """Documents per kind family (the part of `kind` before the colon), sorted by name."""
    return dict(sorted(Counter(d["kind"].split(":")[0] for d in docs).items()))


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
        record_in_manifest(docs, sha, args.seed, args.n_docs)


def record_in_manifest(docs, sha, seed, n_docs):
    counts = dict(sorted(Counter(d["source"] for d in docs).items()))
    update_manifest("corpus", {"path": "data/corpus.jsonl", "sha256": sha, "n_docs": len(docs),
                               "sha256_without_kind": sha256_without_kind(docs), "kinds": kind_families(docs),
                               "seed": seed, "sources": counts,
                               "command": f"python -m data.generate_corpus --seed {seed} --n-docs {n_docs}"})


if __name__ == "__main__":
    main()
