"""Fit the curvature factors: covariances A, S -> float64 eigh -> EK-FAC eigenvalues Λ (or diagonal E[G²]).

Conventions (as kronfluence 1.0.1): A = Σ a aᵀ / n_tokens and S = Σ g gᵀ / n_tokens over non-padding tokens,
Λ = Σ_docs (Q_Sᵀ G_d Q_A)² / n_docs with G_d = Σ_t g_t a_tᵀ the gradient of document d's summed loss.
"""
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Iterable

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from engine.arguments import FISHERS, STRATEGIES
from engine.batches import Batch
from engine.distributed import all_reduce_sum
from engine.errors import EngineInputError
from engine.hooks import GradientCapture, forward_backward, work_dtype
from engine.model import module_shape

# per-module tensor names: Q_A, eigenvalues of A, Q_S, eigenvalues of S, Λ (ekfac) or E[G²] (diagonal)
A_VECS, A_VALS, S_VECS, S_VALS, LAMBDA = "a_eigvecs", "a_eigvals", "s_eigvecs", "s_eigvals", "lambda"


@dataclass
class FactorArguments:
    strategy: str = "ekfac"  # ekfac | kfac | diagonal | identity
    fisher: str = "sampled"  # sampled | empirical
    seed: int = 0

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise EngineInputError(f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})")
        if self.fisher not in FISHERS:
            raise EngineInputError(f"unknown fisher {self.fisher!r} (choose from {', '.join(FISHERS)})")


class Factors:
    """Per-module factor tensors on CPU (float32; float64 when fitted on a float64 model)."""

    def __init__(self, strategy: str, fisher: str, modules: list[str], n_documents: int = 0, n_tokens: int = 0,
                 tensors: dict[str, dict[str, torch.Tensor]] | None = None, damping: dict[str, float] | None = None,
                 shapes: dict[str, list[int]] | None = None):
        self.strategy, self.fisher, self.modules = strategy, fisher, list(modules)
        self.n_documents, self.n_tokens = int(n_documents), int(n_tokens)
        self.tensors = tensors or {}
        self.damping = dict(damping or {})  # read from older runs' meta.json only; scoring records its damping in the manifest
        self.shapes = dict(shapes or {})  # module -> [d_out, d_in(+1)]

    def save(self, directory: str) -> None:
        """factors.safetensors + meta.json, each written to a temp file and os.replace'd."""
        os.makedirs(directory, exist_ok=True)
        flat = {f"{m}/{k}": t.contiguous() for m, d in self.tensors.items() for k, t in d.items()}
        meta = {"strategy": self.strategy, "fisher": self.fisher, "modules": self.modules, "shapes": self.shapes,
                "n_documents": self.n_documents, "n_tokens": self.n_tokens, "damping": self.damping}
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        os.close(fd)
        save_file(flat, tmp)
        os.replace(tmp, os.path.join(directory, "factors.safetensors"))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(meta, handle, indent=2)
        os.replace(tmp, os.path.join(directory, "meta.json"))

    @classmethod
    def load(cls, directory: str) -> "Factors":
        meta_path, tensor_path = os.path.join(directory, "meta.json"), os.path.join(directory, "factors.safetensors")
        if not os.path.exists(meta_path) or not os.path.exists(tensor_path):
            raise EngineInputError(f"no factors in {directory} (need meta.json and factors.safetensors)")
        with open(meta_path) as handle:
            meta = json.load(handle)
        tensors: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in load_file(tensor_path).items():
            module, name = key.rsplit("/", 1)
            tensors.setdefault(module, {})[name] = tensor
        return cls(meta["strategy"], meta["fisher"], meta["modules"], meta["n_documents"], meta["n_tokens"],
                   tensors, meta.get("damping"), meta.get("shapes"))


def run_pass(model, tracked, batches: list[Batch], args: FactorArguments, on_gradient, desc: str,
             progress: bool) -> tuple[int, int]:
    """Forward+backward over all batches calling on_gradient; returns (n_documents, n_tokens) of this rank."""
    device = next(model.parameters()).device
    n_docs = n_tokens = 0
    with GradientCapture(model, tracked, on_gradient) as capture, torch.enable_grad():
        for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
            batch = batch.to(device)
            forward_backward(model, capture, batch, args.seed if args.fisher == "sampled" else None)
            n_docs += batch.input_ids.shape[0]
            n_tokens += batch.n_tokens
    return n_docs, n_tokens


def fit_covariances(model, tracked, batches, args, progress) -> tuple[dict, int]:
    dtype = work_dtype(model)
    sums: dict[str, list[torch.Tensor]] = {}

    def on_gradient(name, a, g):
        a, g = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
        if name not in sums:
            sums[name] = [a.new_zeros(a.shape[1], a.shape[1]), g.new_zeros(g.shape[1], g.shape[1])]
        sums[name][0].addmm_(a.t(), a)  # Σ a aᵀ (padding rows of a are zero)
        sums[name][1].addmm_(g.t(), g)  # Σ g gᵀ (padding rows of g are zero: no loss flows there)

    _, n_tokens = run_pass(model, tracked, batches, args, on_gradient, "factors: covariances", progress)
    n_tokens = int(all_reduce_sum(torch.tensor([n_tokens], dtype=torch.float64)).item())
    eigen = {}
    for name in tracked:
        a_sum, s_sum = (all_reduce_sum(t.cpu()) for t in sums[name])
        a_vals, a_vecs = torch.linalg.eigh(a_sum.double() / n_tokens)
        s_vals, s_vecs = torch.linalg.eigh(s_sum.double() / n_tokens)
        eigen[name] = {A_VECS: a_vecs.to(dtype), A_VALS: a_vals.to(dtype),
                       S_VECS: s_vecs.to(dtype), S_VALS: s_vals.to(dtype)}
    return eigen, n_tokens


def eigenbasis_gradients(g: torch.Tensor, a: torch.Tensor, s_vecs: torch.Tensor, a_vecs: torch.Tensor,
                         rotate_tokens: bool | None = None) -> torch.Tensor:
    """Q_Sᵀ G_d Q_A per document [B, d_out, d_in'] = Σ_t (Q_Sᵀ g_t)(Q_Aᵀ a_t)ᵀ: rotating the T token vectors
    first is cheaper than rotating the d_out × d_in' matrix when T (d_out² + d_in²) < d_out d_in (d_out + d_in)."""
    t, d_out, d_in = g.shape[1], g.shape[2], a.shape[2]
    if rotate_tokens is None:
        rotate_tokens = t * (d_out ** 2 + d_in ** 2) < d_out * d_in * (d_out + d_in)
    if rotate_tokens:
        return torch.bmm((g @ s_vecs).transpose(1, 2), a @ a_vecs)
    return s_vecs.t() @ torch.bmm(g.transpose(1, 2), a) @ a_vecs


def fit_lambda(model, tracked, batches, args, eigen, progress) -> tuple[dict, int, int]:
    """ekfac: Σ_d (Q_Sᵀ G_d Q_A)² / n_docs; diagonal: Σ_d G_d² / n_docs (elementwise)."""
    device = next(model.parameters()).device
    on_device = {n: {k: t.to(device) for k, t in d.items()} for n, d in eigen.items()}
    sums: dict[str, torch.Tensor] = {}

    def on_gradient(name, a, g):
        if args.strategy == "ekfac":
            per_doc = eigenbasis_gradients(g, a, on_device[name][S_VECS], on_device[name][A_VECS])
        else:
            per_doc = torch.bmm(g.transpose(1, 2), a)  # G_d = Σ_t g_t a_tᵀ  [B, d_out, d_in']
        term = per_doc.square().sum(dim=0)
        sums[name] = term if name not in sums else sums[name] + term

    n_docs, n_tokens = run_pass(model, tracked, batches, args, on_gradient, "factors: eigenvalue correction", progress)
    counts = all_reduce_sum(torch.tensor([n_docs, n_tokens], dtype=torch.float64))
    n_docs, n_tokens = int(counts[0].item()), int(counts[1].item())
    lambdas = {name: (all_reduce_sum(sums[name].cpu().double()) / n_docs).to(work_dtype(model)) for name in tracked}
    return lambdas, n_docs, n_tokens


def fit_factors(model: nn.Module, tracked: dict[str, nn.Module], batches: Iterable[Batch], args: FactorArguments,
                progress: bool = True) -> Factors:
    shapes = {name: list(module_shape(module)) for name, module in tracked.items()}
    if args.strategy == "identity":
        return Factors(args.strategy, args.fisher, list(tracked), 0, 0, {}, shapes=shapes)
    batches = list(batches)
    if not batches:
        raise EngineInputError("no documents to fit factors on")
    was_training = model.training
    model.eval()
    try:
        tensors: dict[str, dict[str, torch.Tensor]] = {name: {} for name in tracked}
        n_docs = n_tokens = 0
        if args.strategy in ("kfac", "ekfac"):
            eigen, n_tokens = fit_covariances(model, tracked, batches, args, progress)
            for name in tracked:
                tensors[name].update(eigen[name])
            n_docs = int(all_reduce_sum(torch.tensor([sum(b.input_ids.shape[0] for b in batches)],
                                                     dtype=torch.float64)).item())
        if args.strategy in ("ekfac", "diagonal"):
            lambdas, n_docs, n_tokens = fit_lambda(model, tracked, batches, args, tensors, progress)
            for name in tracked:
                tensors[name][LAMBDA] = lambdas[name]
    finally:
        model.train(was_training)
    return Factors(args.strategy, args.fisher, list(tracked), n_docs, n_tokens, tensors, shapes=shapes)
