"""The measurement seam (as kronfluence's Task): what the engine differentiates, passed in, not hard-wired.

    score(q, d) = ∇f_q(θ)ᵀ · P⁻¹ · ∇L_d(θ)

- L_d = Task.document_loss: the training loss of document d, Σ_t −log p(x_t | x_<t) over its targets — what
  pretraining minimised. Used by the fit (its gradients' covariances and Λ), scoring and the index.
- f_q = Task.measurement: the query's measured quantity as a loss, Σ over the *measured* completion tokens of
  −log p(token | prefix). Which completion tokens are measured is the task's `measured_span` (a character span of
  the completion): the whole completion by default (f_q = −log p(completion | prompt)); `AnswerTokens` measures
  only the tokens of the answer's last occurrence (the final answer of a chain of thought, given the reasoning).

Influence then reads "how much does training on d lower the loss of what is measured"; scores of two tasks are
different quantities (nats, per-nat scores and rankings all refer to the measured tokens).
"""
from __future__ import annotations

import torch

from engine.arguments import MEASUREMENTS
from engine.errors import EngineInputError
from engine.hooks import summed_nll


class Task:
    """Default: summed next-token NLL of documents; the whole completion measured."""
    name = "completion"

    def document_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[B] Σ_t NLL over each row's targets (a sum over tokens: per-token scores split it token by token)."""
        return summed_nll(logits, labels)

    def measurement(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[B] Σ NLL over each query's measured tokens (the labels keep only those: measured_span)."""
        return summed_nll(logits, labels)

    def measured_span(self, completion: str, answer: str | None) -> tuple[int, int] | None:
        """Character span [start, stop) of the completion whose tokens are measured; None: every token."""
        return None


class AnswerTokens(Task):
    """Only the tokens of the answer's last occurrence in the completion: −log p(answer | prompt, reasoning)."""
    name = "answer"

    def measured_span(self, completion: str, answer: str | None) -> tuple[int, int]:
        text = "" if answer is None else str(answer).strip()
        if not text:
            raise EngineInputError("the answer measurement needs the query's `answer`", field="answer")
        start = completion.rfind(text)
        if start < 0:
            raise EngineInputError(f"answer {text!r} does not occur in the completion", field="answer")
        return start, start + len(text)


TASKS = {task.name: task for task in (Task(), AnswerTokens())}
DEFAULT_TASK = TASKS["completion"]
assert tuple(TASKS) == MEASUREMENTS, "engine.arguments.MEASUREMENTS names the tasks for torch-free callers"
