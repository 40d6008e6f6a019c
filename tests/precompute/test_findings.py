"""Findings on synthetic runs: with no effect (i.i.d. noise scores) verdicts say "holds" at most at the α rate and
the Holm-adjusted verdicts of a run almost never; with a planted per-task shared score component the correlation
findings hold (adjusted too), and a planted occurrence contrast holds; a fixed seed gives the same file."""
import numpy as np
import pandas as pd

from precompute import analysis
from precompute.analysis import multiplicity, registry
from precompute.analysis.context import AnalysisContext

TASKS = ["arithmetic", "slope", "linear_equation", "factual"]
PER_TASK = 6
N_DOCS = 400
FINDINGS_K = 40


def synthetic_inputs(seed: int, planted: float = 0.0) -> analysis.AnalysisInputs:
    """24 queries (3 reasoning tasks + factual) over 400 documents; scores are i.i.d. noise, plus `planted` times
    one shared component per reasoning task. Texts, kinds and nats are random, independent of the scores."""
    rng = np.random.default_rng(seed)
    tasks = [task for task in TASKS for _ in range(PER_TASK)]
    shared = {task: rng.standard_normal(N_DOCS) for task in TASKS}
    scores = np.stack([rng.standard_normal(N_DOCS) + (planted * shared[t] if t != "factual" else 0.0)
                       for t in tasks]).astype(np.float32)
    queries = []
    for i, task in enumerate(tasks):
        a, b = (int(v) for v in rng.integers(1, 5, size=2))
        if task == "factual":
            prompt, answer, completion = f"Q: Which town is near Lake{i % 3}?", f"Town{i % 5}", f" Town{i % 5}."
        else:
            prompt, answer = f"Q: {a} plus {b}?", str(a + b)
            completion = f" {a} + {b} = {a + b}. The answer is {a + b}."
        queries.append({"id": f"q{i:02d}", "task": task, "prompt": prompt, "completion": completion,
                        "answer": answer, "steps": [], "nats": float(rng.lognormal(0.5, 0.5))})
    texts = [f"{rng.integers(1, 5)} plus {rng.integers(1, 5)} gives {rng.integers(2, 9)}. "
             f"Town{rng.integers(0, 8)} is near Lake{rng.integers(0, 4)}." for _ in range(N_DOCS)]
    documents = pd.DataFrame({
        "id": [f"d{j:03d}" for j in range(N_DOCS)], "source": rng.choice(["web", "wiki", "code"], N_DOCS),
        "kind": rng.choice(["procedure:arithmetic", "procedure:slope", "procedure:linear_equation", "fact:Town1",
                            "unrelated"], N_DOCS)})
    return analysis.AnalysisInputs(scores=scores, queries=queries, documents=documents, doc_texts=texts)


def findings_of(inputs, seed=0, n_resamples=600) -> list[dict]:
    """The findings alone (no tables), with fewer resamples to keep the test fast."""
    ctx = AnalysisContext(inputs, seed=seed, n_resamples=n_resamples, progress=False, findings_k=FINDINGS_K)
    return [finding.record() for spec in registry.registered_findings() for finding in spec.produce(ctx)]


def test_no_effect_no_finding_holds_beyond_alpha():
    runs = [multiplicity.adjust_for_multiplicity(findings_of(synthetic_inputs(seed))) for seed in range(5)]
    verdicts = [record["verdict"] for records in runs for record in records]
    names = {record["name"] for record in runs[0]}
    assert {"correlation.reasoning_vs_factual", "correlation.same_vs_cross_task", "occurrence.answer",
            "occurrence.answer_in_context", "magnitude.per_nat_top1", "magnitude.information_adjusted",
            "ground_truth.slope", "ground_truth.slope.specificity"} <= names
    assert len(verdicts) >= 80
    assert verdicts.count("holds") <= 0.05 * len(verdicts), verdicts.count("holds")
    # family-wise: a run with any adjusted "holds" is a false discovery; Holm keeps that rate near alpha per run
    assert all(record["interval_p"] is not None for records in runs for record in records)
    assert sum(any(r["adjusted_verdict"] == "holds" for r in records) for records in runs) <= 1
    assert sum(any(r.get("primary_adjusted_verdict") == "holds" for r in records) for records in runs) <= 1


def test_planted_occurrence_and_its_adjusted_verdict_hold():
    """Factual answers retrieved first, reasoning answers at random: the ceiling-free occurrence finding holds,
    also after Holm over the run's findings and within the headline claims."""
    inputs = synthetic_inputs(4)
    for row, query in enumerate(inputs.queries):
        if query["task"] == "factual":
            containing = [j for j, text in enumerate(inputs.doc_texts) if f"{query['answer']} is" in text]
            inputs.scores[row, containing] += 5.0
    records = {r["name"]: r for r in multiplicity.adjust_for_multiplicity(findings_of(inputs))}
    answer = records["occurrence.answer"]
    assert answer["verdict"] == "holds" and answer["adjusted_verdict"] == "holds", answer["text"]
    assert answer["primary"] and answer["primary_adjusted_verdict"] == "holds"
    assert answer["parts"]["factual_scaled"] > 0.5 and abs(answer["parts"]["reasoning_scaled"]) < 0.2


def test_planted_per_task_component_makes_the_correlation_findings_hold():
    records = {record["name"]: record
               for record in multiplicity.adjust_for_multiplicity(findings_of(synthetic_inputs(11, planted=0.5)))}
    for name in ("correlation.reasoning_vs_factual", "correlation.same_vs_cross_task",
                 "correlation.same_vs_cross_task.slope"):
        assert records[name]["verdict"] == "holds", records[name]["text"]
        assert records[name]["adjusted_verdict"] == "holds", records[name]["text"]
        assert records[name]["p_value"] < 0.01
    # the planted component is what the difference measures: same-task r ≈ 0.25 / 1.25 = 0.2 above the rest
    assert 0.12 < records["correlation.reasoning_vs_factual"]["effect"] < 0.28


def test_findings_are_deterministic_for_a_seed():
    inputs = synthetic_inputs(3, planted=0.2)
    first, again, other = findings_of(inputs, seed=5), findings_of(inputs, seed=5), findings_of(inputs, seed=6)
    assert first == again
    assert [r["ci_low"] for r in first] != [r["ci_low"] for r in other]
