"""The demo corpus generator: deterministic, well-formed, and the committed manifest describes its output."""
import hashlib
import json
import re
from collections import Counter

from data.facts import all_facts
from data.generate_corpus import DEFAULT_N_DOCS, generate, kind_families, sha256_without_kind, write_jsonl
from data.manifest import read_manifest
from data.procedures import expression, query_problems

SOURCES = {"wiki", "math_and_trivia", "code", "stackexchange", "arxiv", "web", "multilingual"}


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    sha_a = write_jsonl(generate(seed=3, n_docs=400), a)
    sha_b = write_jsonl(generate(seed=3, n_docs=400), b)
    sha_c = write_jsonl(generate(seed=4, n_docs=400), c)
    assert a.read_bytes() == b.read_bytes() and sha_a == sha_b
    assert sha_c != sha_a
    assert sha_a == hashlib.sha256(a.read_bytes()).hexdigest()


def test_documents_are_well_formed():
    docs = generate(seed=0, n_docs=2000)
    assert [d["id"] for d in docs] == [f"doc-{i:05d}" for i in range(2000)]
    assert all(set(d) == {"id", "source", "text", "kind"} and d["text"].strip() for d in docs)
    counts = Counter(d["source"] for d in docs)
    assert set(counts) == SOURCES
    assert 0 < counts["multilingual"] < counts["web"]  # a small multilingual share


def test_default_corpus_matches_manifest(tmp_path):
    docs = generate(seed=0, n_docs=DEFAULT_N_DOCS)
    sha = write_jsonl(docs, tmp_path / "corpus.jsonl")
    corpus = read_manifest()["corpus"]
    assert corpus["sha256"] == sha
    assert corpus["n_docs"] == len(docs) == DEFAULT_N_DOCS
    assert corpus["sources"] == dict(Counter(d["source"] for d in docs))
    assert corpus["kinds"] == kind_families(docs)
    assert 5000 <= len(docs) <= 30000


def test_texts_are_the_ones_the_model_was_trained_on():
    """Adding `kind` changed only metadata: without it the corpus file is byte-identical to the training corpus."""
    manifest = read_manifest()
    without_kind = sha256_without_kind(generate(seed=0, n_docs=DEFAULT_N_DOCS))
    assert without_kind == manifest["corpus"]["sha256_without_kind"] == manifest["model"]["corpus_sha256"]


def test_kind_is_the_ground_truth_of_the_text():
    """procedure:<task> documents work that task's procedure; fact:<subject> ones state that subject's facts;
    unrelated ones carry no queried fact and no worked procedure."""
    facts = all_facts()
    markers = {"arithmetic": re.compile(r"\(\d+ [-+] \d+\)|inner|brackets"),
               "slope": re.compile(r"slope", re.IGNORECASE),
               "linear_equation": re.compile(r"\d+x \+ \d+ = \d+")}
    for d in generate(seed=1, n_docs=1500):
        family, _, detail = d["kind"].partition(":")
        assert family in {"procedure", "drill", "fact", "copy", "unrelated"}, d["kind"]
        if family == "procedure":
            for task in detail.split("+"):
                assert markers[task].search(d["text"]), (task, d["text"])
        elif family == "fact":
            assert all(subject.lower() in d["text"].lower() for subject in detail.split("+")), (detail, d["text"])
        elif family == "unrelated":
            assert "The answer is" not in d["text"] and not any(f"{s} is {a}" in d["text"] for _, s, a in facts)


def test_query_problems_not_copied_into_corpus():
    """Reasoning queries are held out: their exact problems never appear in the corpus (the procedures do)."""
    texts = "\n".join(d["text"] for d in generate(seed=0, n_docs=DEFAULT_N_DOCS))
    for task, problems in query_problems().items():
        for p in problems:
            assert expression(task, p) not in texts, (task, p)
    assert "The answer is" in texts and "The change in y is" in texts and "Subtract" in texts


def test_every_queried_fact_is_stated_several_times():
    texts = [d["text"] for d in generate(seed=0, n_docs=DEFAULT_N_DOCS)]
    queries = [json.loads(line) for line in open("data/queries.jsonl")]
    facts = all_facts()
    for q in queries:
        if q["task"] == "factual":
            (subject,) = [s for _, s, a in facts if a == q["answer"] and s in q["prompt"]]
            n = sum(subject in t and q["answer"] in t for t in texts)
            assert n >= 5, (q["id"], subject, n)
        if q["task"] == "factual_control":  # made-up entity: only the prompt knows it
            name = q["prompt"].split("capital of ")[1].split(" ")[0]
            assert not any(name in t for t in texts), name
