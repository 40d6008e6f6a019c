"""Tail-patch validation: take S plain SGD steps on a set of documents, measure how log p(completion | prompt)
of a query moved, put the parameters back.

The training loss is the one the influence scores differentiate: the summed next-token NLL over every target of
every document in the set, L_set = Σ_d Σ_t NLL. A step is θ ← θ − η ∇θ L_set on the chosen parameters
(by default the weights and biases of the tracked modules, the parameters the scores describe). To first order,
for one step, Δ log p(completion) = η ⟨∇ log p, −∇L_set⟩ = η Σ_d ⟨G_q, G_d⟩ (identity influence, summed).

The model is used in place (no copy of the model): the chosen parameters are saved once and copied back after
every patch, so the model is bit-identical before and after.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.batches import IGNORE, Tokenized, make_batches
from engine.errors import EngineInputError
from engine.hooks import token_nll


@dataclass
class TailPatchResult:
    delta_logprob: float            # Δ Σ_t log p(completion token t | prefix)
    delta_per_token: torch.Tensor   # [n completion tokens] Δ log p of each completion token (float64)

    @property
    def n_tokens(self) -> int:
        return int(self.delta_per_token.numel())


def module_parameters(tracked: dict[str, nn.Module]) -> dict[str, nn.Parameter]:
    """The weights (and biases) of the tracked modules, by qualified name (e.g. 'model.layers.0.mlp.up_proj.weight')."""
    found = {}
    for name, module in tracked.items():
        for kind in ("weight", "bias"):
            parameter = getattr(module, kind, None)
            if isinstance(parameter, nn.Parameter):
                found[f"{name}.{kind}"] = parameter
    if not found:
        raise EngineInputError("the tracked modules have no parameters to update")
    return found


def all_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter of the model (tied weights once)."""
    return dict(model.named_parameters())


class TailPatch:
    """Patch-measure-restore on one model. `parameters` are the tensors the SGD steps change."""

    def __init__(self, model: nn.Module, parameters: dict[str, nn.Parameter], batch_size: int = 8, pad_id: int = 0):
        if batch_size < 1:
            raise EngineInputError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.batch_size, self.pad_id = model, batch_size, int(pad_id)
        self.names = list(parameters)
        self.parameters = [parameters[name] for name in self.names]
        self.saved = [p.detach().clone() for p in self.parameters]
        self.device = self.parameters[0].device

    # ------------------------------------------------------------ measuring

    @torch.no_grad()
    def completion_logprobs(self, queries: list[Tokenized]) -> list[torch.Tensor]:
        """Per query, log p of each completion token (the positions with a target), float64 on the CPU."""
        out = []
        for batch in make_batches(queries, self.batch_size, self.pad_id):
            batch = batch.to(self.device)
            logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            logp = F.log_softmax(logits.double(), dim=-1)
            targets = batch.labels.clamp_min(0)
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for row in range(picked.shape[0]):
                out.append(picked[row][batch.labels[row] != IGNORE].cpu())
        return out

    # ------------------------------------------------------------ training steps

    def set_gradient(self, documents: list[Tokenized]) -> list[torch.Tensor]:
        """∇ of L_set = Σ_d Σ_t NLL over `documents` for each chosen parameter (micro-batches by length)."""
        if not documents:
            raise EngineInputError("a tail-patch needs at least one document")
        order = sorted(range(len(documents)), key=lambda i: len(documents[i].input_ids))
        ordered = [documents[i] for i in order]
        total = [torch.zeros_like(p) for p in self.parameters]
        with self.trainable(), torch.enable_grad():
            for batch in make_batches(ordered, self.batch_size, self.pad_id):
                batch = batch.to(self.device)
                logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
                loss = token_nll(logits, batch.labels).sum()
                grads = torch.autograd.grad(loss, self.parameters, allow_unused=True)
                for accumulated, grad in zip(total, grads):
                    if grad is not None:
                        accumulated.add_(grad)
        return total

    @contextmanager
    def trainable(self):
        """Only the chosen parameters require grad while a set gradient is taken."""
        chosen = {id(p) for p in self.parameters}
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        try:
            for p, _ in flags:
                p.requires_grad_(id(p) in chosen)
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    @torch.no_grad()
    def restore(self) -> None:
        for parameter, saved in zip(self.parameters, self.saved):
            parameter.copy_(saved)

    @contextmanager
    def patched(self, documents: list[Tokenized], lr: float, steps: int = 1,
                gradient: list[torch.Tensor] | None = None):
        """Inside the block the model has taken `steps` SGD steps of rate `lr` on L_set; restored afterwards.
        `gradient`: set_gradient(documents) at the unpatched parameters when already known (the first step's)."""
        if steps < 1:
            raise EngineInputError(f"steps must be at least 1, got {steps}")
        was_training = self.model.training
        self.model.eval()
        try:
            for step in range(steps):
                grads = gradient if step == 0 and gradient is not None else self.set_gradient(documents)
                with torch.no_grad():
                    for parameter, grad in zip(self.parameters, grads):
                        parameter.sub_(grad.to(parameter.dtype), alpha=lr)
            yield self
        finally:
            self.restore()
            self.model.train(was_training)

    def deltas(self, queries: list[Tokenized], documents: list[Tokenized], lr: float, steps: int = 1,
               before: list[torch.Tensor] | None = None,
               gradient: list[torch.Tensor] | None = None) -> list[TailPatchResult]:
        """Δ log p(completion | prompt) of each query after `steps` SGD steps on `documents` (one patch for all);
        `before`: the queries' completion_logprobs at the unpatched parameters, when already known; `gradient`: as
        in patched."""
        if before is None:
            before = self.completion_logprobs(queries)
        with self.patched(documents, lr, steps, gradient):
            after = self.completion_logprobs(queries)
        return [TailPatchResult(float((a - b).sum()), a - b) for a, b in zip(after, before)]

    def delta(self, query: Tokenized, documents: list[Tokenized], lr: float, steps: int = 1,
              before: torch.Tensor | None = None) -> TailPatchResult:
        """Δ log p(completion | prompt) of one query after `steps` SGD steps on `documents`."""
        return self.deltas([query], documents, lr, steps, None if before is None else [before])[0]

    def first_order(self, queries: list[Tokenized], documents: list[Tokenized],
                    gradient: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Per query ⟨∇ log p(completion), −∇ L_set⟩ over the chosen parameters (float64 [Q]): dΔ/d lr at lr = 0
        for one step, i.e. the set's summed identity influence restricted to these parameters. `gradient`: as in
        patched."""
        documents_gradient = self.set_gradient(documents) if gradient is None else gradient
        out = []
        for query in queries:
            completion = self.set_gradient([query])      # ∇ of the completion NLL (targets only on the completion)
            out.append(sum(float((a.double() * b.double()).sum()) for a, b in zip(completion, documents_gradient)))
        return torch.tensor(out, dtype=torch.float64)
