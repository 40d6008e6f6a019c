"""Build the query sets and the demo model's greedy completions: `python -m data.make_queries`.

Writes data/queries.jsonl (id, task, prompt, completion, answer, steps, correct) and records per-task accuracy in
data/manifest.json. Reasoning queries ask the held-out problems of data/procedures.py (never present verbatim in
the corpus); factual queries ask facts the corpus states many times; controls carry the answer in the prompt.
"""
import argparse
import hashlib
import json
import os
import random
import re
import time
from collections import Counter, defaultdict

import torch

from data.facts import BOOKS, CONTROL_COUNTRIES, COUNTRIES, INVENTIONS, question_and_answer
from data.manifest import update_manifest
from data.procedures import SAMPLERS, TASKS, query_problems, question, steps

HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = os.path.join(HERE, "queries.jsonl")
MODEL_DIR = os.path.join(HERE, "model")
MAX_NEW_TOKENS = 64
CONTROL_SEED = 7


def reasoning_queries():
    out = []
    for task, problems in query_problems().items():
        for i, p in enumerate(problems):
            s = [str(v) for v in steps(task, p)]
            out.append({"id": f"{task}-{i:02d}", "task": task, "prompt": f"Q: {question(task, p)}\nA:",
                        "answer": s[-1], "steps": s})
    return out


def factual_queries():
    """44 facts: every capital, 8 languages, 6 currencies, 6 authors, 4 inventors."""
    facts = [("capital", c[0], c[1]) for c in COUNTRIES]
    facts += [("language", c[0], c[2]) for c in COUNTRIES[:8]]
    facts += [("currency", c[0], c[3]) for c in COUNTRIES[8:14]]
    facts += [("author", b[0], b[1]) for b in BOOKS[:6]]
    facts += [("inventor", d, who) for d, who in INVENTIONS[:4]]
    out = []
    for i, (kind, subject, answer) in enumerate(facts):
        q, _ = question_and_answer(kind, subject, answer)
        out.append({"id": f"factual-{i:02d}", "task": "factual", "prompt": f"Q: {q}\nA:", "answer": answer,
                    "steps": []})
    return out


def control_queries():
    """Controls: the answer is stated in the prompt (a made-up fact, or the result of a problem)."""
    out = []
    for i, (name, capital) in enumerate(CONTROL_COUNTRIES):
        q, a = question_and_answer("capital", name, capital)
        out.append({"id": f"factual_control-{i:02d}", "task": "factual_control",
                    "prompt": f"Note: {a}\nQ: {q}\nA:", "answer": capital, "steps": []})
    rng = random.Random(CONTROL_SEED)
    for i in range(10):
        task = TASKS[i % 3]
        p = SAMPLERS[task](rng)
        q, ans = question(task, p), str(steps(task, p)[-1])
        out.append({"id": f"reasoning_control-{i:02d}", "task": "reasoning_control",
                    "prompt": f"Note: the answer to \"{q}\" is {ans}.\nQ: {q}\nA:", "answer": ans, "steps": []})
    return out


def build_queries():
    """All queries without completions, in a fixed order."""
    return reasoning_queries() + factual_queries() + control_queries()


def final_answer(completion):
    """The final answer a completion states: the number after the last 'The answer is', else the last number, else
    the words after the last 'is' / 'is the' / 'by' of the first sentence (factual answers)."""
    text = completion.strip()
    m = re.findall(r"The answer is (-?\d+)", text)
    if m:
        return m[-1]
    sentence = text.split("\n")[0]
    words = re.findall(r"\b(?:is(?: the)?|by) ([^.\n]+?)\.", sentence)
    if words:
        return words[-1].strip()
    nums = re.findall(r"-?\d+", text)
    return nums[-1] if nums else ""


def load_model(model_dir=MODEL_DIR):
    from transformers import AutoTokenizer, LlamaForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model, tokenizer


@torch.no_grad()
def complete(model, tokenizer, prompt, max_new_tokens=MAX_NEW_TOKENS):
    """Greedy continuation of the prompt, cut at eos or at the first blank line (a new paragraph)."""
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    return text.split("\n\n")[0].rstrip()


def accuracy(queries):
    by_task = defaultdict(list)
    for q in queries:
        by_task[q["task"]].append(q["correct"])
    return {t: {"correct": sum(v), "n": len(v), "accuracy": round(sum(v) / len(v), 3)} for t, v in by_task.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=MODEL_DIR)
    ap.add_argument("--out", default=QUERIES)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    model, tokenizer = load_model(args.model)
    queries = build_queries()
    for q in queries:
        q["completion"] = complete(model, tokenizer, q["prompt"])
        q["correct"] = final_answer(q["completion"]) == q["answer"]
    fields = ["id", "task", "prompt", "completion", "answer", "steps", "correct"]
    data = "".join(json.dumps({k: q[k] for k in fields}, ensure_ascii=False) + "\n" for q in queries).encode()
    tmp = f"{args.out}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    acc = accuracy(queries)
    for task, a in acc.items():
        print(f"{task:18s} {a['correct']:3d}/{a['n']:3d} = {a['accuracy']:.2f}")
    print(f"wrote {len(queries)} queries to {args.out} in {time.time() - t0:.1f}s")
    if os.path.abspath(args.out) == QUERIES:
        update_manifest("queries", {"path": "data/queries.jsonl", "sha256": hashlib.sha256(data).hexdigest(),
                                    "counts": dict(Counter(q["task"] for q in queries)), "accuracy": acc,
                                    "generation": {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS,
                                                   "stop": "eos or blank line"},
                                    "command": "python -m data.make_queries"})


if __name__ == "__main__":
    main()
