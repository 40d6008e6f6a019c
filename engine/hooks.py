"""Capture per-token input activations a and output gradients g of the tracked layers.

Parameters are frozen (no weight .grad is ever computed). A tracked module whose output does not require grad
(the lowest tracked layers, whose input does not depend on anything tracked) gets its output replaced by a leaf
that does, so gradients flow to every tracked output and backward stops there instead of running on down to
the embeddings. For a layer with a bias, a gets a constant 1 appended, so the
layer's full gradient is G = Σ_t g_t a_tᵀ of shape [d_out, d_in + 1].
"""
from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.batches import IGNORE, Batch
from engine.seeds import derived_seed

GradientCallback = Callable[[str, torch.Tensor, torch.Tensor], None]  # (module name, a [B,T,d_in'], g [B,T,d_out])


def work_dtype(model: nn.Module) -> torch.dtype:
    """Statistics and contractions run in float32 (float64 when the model itself is float64)."""
    dtype = next(model.parameters()).dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


@contextmanager
def frozen_parameters(model: nn.Module):
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


class GradientCapture:
    """Calls on_gradient(name, a, g) during backward for every tracked module (padding rows of a zeroed)."""

    def __init__(self, model: nn.Module, tracked: dict[str, nn.Module], on_gradient: GradientCallback,
                 mask_activations: bool = True):
        """mask_activations=False skips zeroing padding rows of a: fine wherever a only meets g (g is exactly 0
        at padding, since no loss and no later position depends on it), as in scoring."""
        self.model, self.tracked, self.on_gradient = model, tracked, on_gradient
        self.mask_activations = mask_activations
        self.dtype = work_dtype(model)
        self.mask: torch.Tensor | None = None
        self.handles = []

    def __enter__(self) -> "GradientCapture":
        self._frozen = frozen_parameters(self.model)
        self._frozen.__enter__()
        for name, module in self.tracked.items():
            self.handles.append(module.register_forward_hook(self._forward_hook(name, module)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self._frozen.__exit__(*exc)

    def _forward_hook(self, name: str, module: nn.Module):
        def hook(mod, inputs, output):
            a = inputs[0].detach().to(self.dtype)
            if module.bias is not None:
                a = torch.cat([a, a.new_ones(a.shape[:-1] + (1,))], dim=-1)
            if self.mask is not None and self.mask_activations:
                a = a * self.mask.to(a.dtype).unsqueeze(-1)
            if torch.is_grad_enabled() and not output.requires_grad:
                output = output.detach().requires_grad_(True)  # a leaf: backward stops here
            if output.requires_grad:
                output.register_hook(lambda grad: self.on_gradient(name, a, grad.detach().to(self.dtype)))
            return output
        return hook


@contextmanager
def document_capture(model: nn.Module, tracked: dict[str, nn.Module], on_gradient: GradientCallback):
    """A GradientCapture for passes over documents (scoring, compression): the model in eval mode (restored after),
    autograd on, activations unmasked (a only ever meets g, which is 0 at padding)."""
    was_training = model.training
    model.eval()
    try:
        with GradientCapture(model, tracked, on_gradient, mask_activations=False) as capture, torch.enable_grad():
            yield capture
    finally:
        model.train(was_training)


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, T] next-token NLL in float32 (float64 for a float64 model; 0 where label is -100)."""
    b, t, v = logits.shape
    logits = logits if logits.dtype == torch.float64 else logits.float()
    nll = F.cross_entropy(logits.reshape(b * t, v), labels.reshape(b * t), ignore_index=IGNORE, reduction="none")
    return nll.view(b, t)


def sample_labels(logits: torch.Tensor, batch: Batch, seed: int) -> torch.Tensor:
    """Labels drawn from the model's own softmax where the batch has a target (sampled Fisher).

    Each document's draws are seeded by (seed, its tokens) over its non-padding positions only, so they do not
    depend on batching, padding, document order or the torchrun rank."""
    drawn = batch.labels.clone()
    for row in range(drawn.shape[0]):
        n = int(batch.attention_mask[row].sum())
        generator = torch.Generator(device=logits.device).manual_seed(
            derived_seed(seed, batch.input_ids[row, :n].cpu().numpy().tobytes()))  # per document: batch-independent
        probs = torch.softmax(logits[row, :n].detach().float(), dim=-1)
        drawn[row, :n] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return torch.where(batch.labels == IGNORE, batch.labels, drawn)


def summed_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] Σ_t NLL per row (engine.task.Task's default loss and measurement)."""
    return token_nll(logits, labels).sum(dim=1)


def forward_backward(model: nn.Module, capture: GradientCapture, batch: Batch, sample_seed: int | None = None,
                     loss: Callable = summed_nll) -> torch.Tensor:
    """One forward and one backward of Σ_rows loss(logits, labels) (an engine.task.Task's document_loss or
    measurement); returns the per-row loss [B] (detached).

    With a sample_seed the targets are sampled from the model (sampled Fisher); the returned loss is of those."""
    capture.mask = batch.attention_mask
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    labels = batch.labels if sample_seed is None else sample_labels(logits, batch, sample_seed)
    per_doc = loss(logits, labels)
    per_doc.sum().backward()
    capture.mask = None
    return per_doc.detach()
