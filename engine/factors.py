"""Fit the curvature factors: covariances A, S -> float64 eigh -> EK-FAC eigenvalues Λ (or diagonal E[G²]).

Conventions (as kronfluence 1.0.1): A = Σ a aᵀ / n_tokens and S = Σ g gᵀ / n_tokens over non-padding tokens,
Λ = Σ_docs (Q_Sᵀ G_d Q_A)² / n_docs with G_d = Σ_t g_t a_tᵀ the gradient of document d's summed loss.
"""
import json
import math
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from engine.arguments import FISHERS, STRATEGIES
from engine.batches import Batch
from engine.distributed import Grid, rank_and_world, sum_over
from engine.errors import EngineInputError
from engine.hooks import GradientCapture, forward_backward, work_dtype
from engine.model import module_shape
from engine.task import DEFAULT_TASK, Task

# per-module tensor names: Q_A, eigenvalues of A, Q_S, eigenvalues of S, Λ (ekfac) or E[G²] (diagonal)
A_VECS, A_VALS, S_VECS, S_VALS, LAMBDA = "a_eigvecs", "a_eigvals", "s_eigvecs", "s_eigvals", "lambda"
SINGLE_FILE, META_FILE = "factors.safetensors", "meta.json"   # precompute/rundir/layout.py names the shard files
FACTOR_DTYPES = ("float32", "bfloat16", "float16")                # storage; the eigendecomposition is float64


@dataclass
class FactorArguments:
    strategy: str = "ekfac"  # ekfac | kfac | diagonal | identity
    fisher: str = "sampled"  # sampled | empirical
    seed: int = 0
    dtype: str | None = None  # storage dtype of the factors (FACTOR_DTYPES); None: the work dtype
    task: Task = DEFAULT_TASK  # its document_loss is what the factors' gradients are of (engine.task)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise EngineInputError(f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})")
        if self.fisher not in FISHERS:
            raise EngineInputError(f"unknown fisher {self.fisher!r} (choose from {', '.join(FISHERS)})")
        if self.dtype is not None and self.dtype not in FACTOR_DTYPES:
            raise EngineInputError(f"unknown factor dtype {self.dtype!r} (choose from {', '.join(FACTOR_DTYPES)})")


class Factors:
    """Per-module factor tensors on CPU: float32 (float64 when fitted on a float64 model) unless stored in a
    16-bit `--factor-dtype`. `modules` are all the fitted modules; `local_modules` those whose tensors this process
    holds (all of them unless fitted or loaded as one module shard)."""

    def __init__(self, strategy: str, fisher: str, modules: list[str], n_documents: int = 0, n_tokens: int = 0,
                 tensors: dict[str, dict[str, torch.Tensor]] | None = None,
                 shapes: dict[str, list[int]] | None = None, local_modules: list[str] | None = None):
        self.strategy, self.fisher, self.modules = strategy, fisher, list(modules)
        self.n_documents, self.n_tokens = int(n_documents), int(n_tokens)
        self.tensors = tensors or {}
        self.shapes = dict(shapes or {})  # module -> [d_out, d_in(+1)]
        self.local_modules = list(self.modules if local_modules is None else local_modules)

    def meta(self, files: dict[str, list[str]] | None = None) -> dict:
        meta = {"strategy": self.strategy, "fisher": self.fisher, "modules": self.modules, "shapes": self.shapes,
                "n_documents": self.n_documents, "n_tokens": self.n_tokens}
        return meta if files is None else {**meta, "files": files}

    def save_tensors(self, directory: str, file_name: str = SINGLE_FILE) -> None:
        """The local modules' tensors (keys `module/name`) into directory/file_name, atomically."""
        flat = {f"{m}/{k}": t.contiguous() for m in self.local_modules for k, t in self.tensors.get(m, {}).items()}
        write_atomically(directory, file_name, lambda path: save_file(flat, path))

    def save_meta(self, directory: str, files: dict[str, list[str]] | None = None) -> None:
        """meta.json; `files` (file name -> its modules) when the tensors are in module shards, else they are
        all in factors.safetensors."""
        def write(path: str) -> None:
            with open(path, "w") as handle:
                json.dump(self.meta(files), handle, indent=2)
        write_atomically(directory, META_FILE, write)

    def save(self, directory: str) -> None:
        """factors.safetensors + meta.json (one process holding every module), each written atomically."""
        self.save_tensors(directory)
        self.save_meta(directory)

    @classmethod
    def load(cls, directory: str, modules: list[str] | None = None) -> "Factors":
        """All factors, or only those of `modules` (read from whichever files hold them; [] reads meta.json only)."""
        meta_path = os.path.join(directory, META_FILE)
        if not os.path.exists(meta_path):
            raise EngineInputError(f"no factors in {directory} (need meta.json and factors.safetensors)")
        with open(meta_path) as handle:
            meta = json.load(handle)
        wanted = list(meta["modules"] if modules is None else modules)
        files = meta.get("files") or {SINGLE_FILE: meta["modules"]}
        tensors: dict[str, dict[str, torch.Tensor]] = {}
        for file_name, held in files.items():
            needed = set(held) & set(wanted)
            if not needed:
                continue
            path = os.path.join(directory, file_name)
            if not os.path.exists(path):
                raise EngineInputError(f"no factors in {directory} (meta.json names {file_name}, which is missing)")
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    module, name = key.rsplit("/", 1)
                    if module in needed:
                        tensors.setdefault(module, {})[name] = handle.get_tensor(key)
        return cls(meta["strategy"], meta["fisher"], meta["modules"], meta["n_documents"], meta["n_tokens"],
                   tensors, meta.get("shapes"), local_modules=wanted)   # older meta.json files' "damping": unused


def write_atomically(directory: str, file_name: str, write) -> None:
    """write(temporary path) next to directory/file_name, then os.replace it into place."""
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + file_name + ".", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; readers expect ordinary permissions
    try:
        write(tmp)
        os.replace(tmp, os.path.join(directory, file_name))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def factor_tensor_shapes(strategy: str, d_out: int, d_in: int) -> dict[str, tuple[int, ...]]:
    """The shapes of one module's stored factor tensors."""
    shapes: dict[str, tuple[int, ...]] = {}
    if strategy in ("kfac", "ekfac"):
        shapes.update({A_VECS: (d_in, d_in), A_VALS: (d_in,), S_VECS: (d_out, d_out), S_VALS: (d_out,)})
    if strategy in ("ekfac", "diagonal"):
        shapes[LAMBDA] = (d_out, d_in)
    return shapes


def dtype_bytes(dtype: str | torch.dtype) -> int:
    return torch.empty((), dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype).element_size()


def factor_bytes(strategy: str, d_out: int, d_in: int, dtype: str | torch.dtype = "float32") -> int:
    """Bytes of one module's stored factors (d_in counts the bias column): Q_A d_in² + a d_in + Q_S d_out² +
    s d_out (kfac, ekfac) + Λ d_out·d_in (ekfac, diagonal), each element `dtype`. What a rank holds is the sum
    over the modules partition_modules gives its shard; the one formula the memory plan uses."""
    return sum(math.prod(shape) for shape in factor_tensor_shapes(strategy, d_out, d_in).values()) * dtype_bytes(dtype)


def fit_statistics_bytes(strategy: str, d_out: int, d_in: int, dtype: str | torch.dtype = "float32") -> int:
    """Bytes of one module's running sums while fitting (covariances A, S; then Λ), in the work dtype."""
    covariances = d_in * d_in + d_out * d_out if strategy in ("kfac", "ekfac") else 0
    lambdas = d_out * d_in if strategy in ("ekfac", "diagonal") else 0
    return (covariances + lambdas) * dtype_bytes(dtype)


def partition_modules(shapes: dict[str, list[int]], strategy: str, shards: int) -> list[list[str]]:
    """Modules dealt to `shards` shards: largest factor bytes first, each to the least loaded shard (ties: the
    lower shard). A shard then holds at most total/shards + the largest module's bytes; modules keep their order
    within a shard."""
    if shards > len(shapes):
        raise EngineInputError(f"{shards} module shards but only {len(shapes)} tracked modules")
    order = list(shapes)
    size = {name: factor_bytes(strategy, *shapes[name]) or 1 for name in order}
    loads, owner = [0] * shards, {}
    for name in sorted(order, key=lambda n: (-size[n], order.index(n))):
        shard = min(range(shards), key=lambda s: (loads[s], s))
        owner[name], loads[shard] = shard, loads[shard] + size[name]
    return [[name for name in order if owner[name] == shard] for shard in range(shards)]


def run_pass(model, tracked, batches: list[Batch], args: FactorArguments, on_gradient, desc: str,
             progress: bool) -> tuple[int, int]:
    """Forward+backward over all batches calling on_gradient; returns (n_documents, n_tokens) of this rank."""
    device = next(model.parameters()).device
    n_docs = n_tokens = 0
    with GradientCapture(model, tracked, on_gradient) as capture, torch.enable_grad():
        for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
            batch = batch.to(device)
            forward_backward(model, capture, batch, args.seed if args.fisher == "sampled" else None,
                             loss=args.task.document_loss)
            n_docs += batch.input_ids.shape[0]
            n_tokens += batch.n_tokens
    return n_docs, n_tokens


def covariance_sums(model, tracked, batches, args, progress, peers: list[int]) -> tuple[dict, int]:
    """Σ a aᵀ and Σ g gᵀ per module (this rank's documents; in `tracked` order, which every peer shares for the
    reductions) and the token count summed over `peers`."""
    sums: dict[str, list[torch.Tensor]] = {}

    def on_gradient(name, a, g):
        a, g = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
        if name not in sums:
            sums[name] = [a.new_zeros(a.shape[1], a.shape[1]), g.new_zeros(g.shape[1], g.shape[1])]
        sums[name][0].addmm_(a.t(), a)  # Σ a aᵀ (padding rows of a are zero)
        sums[name][1].addmm_(g.t(), g)  # Σ g gᵀ (padding rows of g are zero: no loss flows there)

    _, n_tokens = run_pass(model, tracked, batches, args, on_gradient, "factors: covariances", progress)
    n_tokens = int(sum_over(torch.tensor([n_tokens], dtype=torch.float64), peers).item())
    return {name: sums[name] for name in tracked}, n_tokens


def eigendecompose(sums: dict, n_tokens: int, dtype: torch.dtype, peers: list[int]) -> dict:
    """Per module Q_A, eigenvalues of A, Q_S, eigenvalues of S: float64 eigh of the covariances summed over
    `peers`, stored in `dtype`."""
    eigen = {}
    for name, (a_part, s_part) in sums.items():
        a_sum, s_sum = (sum_over(t.cpu(), peers) for t in (a_part, s_part))
        a_vals, a_vecs = torch.linalg.eigh(a_sum.double() / n_tokens)
        s_vals, s_vecs = torch.linalg.eigh(s_sum.double() / n_tokens)
        eigen[name] = {A_VECS: a_vecs.to(dtype), A_VALS: a_vals.to(dtype),
                       S_VECS: s_vecs.to(dtype), S_VALS: s_vals.to(dtype)}
    return eigen


@contextmanager
def timed_stage(into: dict | None, key: str):
    """into[key] = {"cpu_s" (this process, all threads), "wall_s"} of the block, when `into` is a dict."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield
    finally:
        if into is not None:
            into[key] = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


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


def fit_lambda(model, tracked, batches, args, eigen, progress, peers: list[int]) -> tuple[dict, int, int]:
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
    counts = sum_over(torch.tensor([n_docs, n_tokens], dtype=torch.float64), peers)
    n_docs, n_tokens = int(counts[0].item()), int(counts[1].item())
    lambdas = {name: (sum_over(sums[name].cpu().double(), peers) / n_docs).to(work_dtype(model)) for name in tracked}
    return lambdas, n_docs, n_tokens


def fit_factors(model: nn.Module, tracked: dict[str, nn.Module], batches: Iterable[Batch], args: FactorArguments,
                progress: bool = True, grid: Grid | None = None, stage_seconds: dict | None = None) -> Factors:
    """Factors of every tracked module, or under a `grid` with module shards only of this rank's shard
    (partition_modules; statistics summed over its module peers, which see the other data groups' documents).
    `stage_seconds` (a dict) receives each stage's CPU and wall seconds (timed_stage): covariances,
    eigendecomposition, eigenvalue_correction."""
    grid = grid or Grid(*rank_and_world())
    shapes = {name: list(module_shape(module)) for name, module in tracked.items()}
    owned = partition_modules(shapes, args.strategy, grid.module_shards)[grid.module_shard]
    if args.strategy == "identity":
        return Factors(args.strategy, args.fisher, list(tracked), 0, 0, {}, shapes=shapes, local_modules=owned)
    batches = list(batches)
    if not batches:
        raise EngineInputError("no documents to fit factors on")
    mine, peers = {name: tracked[name] for name in owned}, grid.module_peers
    was_training = model.training
    model.eval()
    try:
        tensors: dict[str, dict[str, torch.Tensor]] = {name: {} for name in mine}
        n_docs = n_tokens = 0
        if args.strategy in ("kfac", "ekfac"):
            with timed_stage(stage_seconds, "covariances"):
                sums, n_tokens = covariance_sums(model, mine, batches, args, progress, peers)
            with timed_stage(stage_seconds, "eigendecomposition"):
                eigen = eigendecompose(sums, n_tokens, work_dtype(model), peers)
            del sums
            for name in mine:
                tensors[name].update(eigen[name])
            n_docs = int(sum_over(torch.tensor([sum(b.input_ids.shape[0] for b in batches)],
                                               dtype=torch.float64), peers).item())
        if args.strategy in ("ekfac", "diagonal"):
            with timed_stage(stage_seconds, "eigenvalue_correction"):
                lambdas, n_docs, n_tokens = fit_lambda(model, mine, batches, args, tensors, progress, peers)
            for name in mine:
                tensors[name][LAMBDA] = lambdas[name]
    finally:
        model.train(was_training)
    if args.dtype is not None:
        stored = getattr(torch, args.dtype)
        tensors = {name: {key: t.to(stored) for key, t in d.items()} for name, d in tensors.items()}
    return Factors(args.strategy, args.fisher, list(tracked), n_docs, n_tokens, tensors, shapes=shapes,
                   local_modules=owned)
