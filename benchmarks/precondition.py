"""Per-query setup cost at SmolLM2-135M's MLP shapes: `python -m precompute bench-precondition [--queries N]`.

Preconditions random query gradients (rank 64 each, like a short completion) against random orthogonal eigenbases
for 12 modules (gate/up 1,536 × 576, down 576 × 1,536; SmolLM2 has 90) at query rank 32, and prints the time per
query and module and the rank-32 factors' relative error against a float64 SVD truncation of the exact P(G).
"""
import argparse
import time

import torch

from engine.factors import A_VALS, A_VECS, LAMBDA, S_VALS, S_VECS, Factors
from engine.precondition import QueryArguments, precondition

RANK = 32


def random_factors(shapes: dict[str, tuple[int, int]]) -> Factors:
    def orthogonal(n: int) -> torch.Tensor:
        return torch.linalg.qr(torch.randn(n, n))[0]

    tensors = {name: {S_VECS: orthogonal(d_out), A_VECS: orthogonal(d_in), LAMBDA: torch.rand(d_out, d_in) ** 4 + 1e-6,
                      S_VALS: torch.rand(d_out), A_VALS: torch.rand(d_in)} for name, (d_out, d_in) in shapes.items()}
    return Factors("ekfac", "sampled", list(shapes), tensors=tensors, shapes={k: list(v) for k, v in shapes.items()})


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", type=int, default=4, help="queries preconditioned together")


def run_command(args: argparse.Namespace, command_line: str, progress: bool) -> None:
    n_queries = args.queries
    torch.manual_seed(0)
    shapes = {f"module{i}": ((1536, 576) if i % 3 != 2 else (576, 1536)) for i in range(12)}
    factors = random_factors(shapes)
    grads = {name: torch.randn(n_queries, 64, d_out).transpose(1, 2) @ torch.randn(n_queries, 64, d_in)
             for name, (d_out, d_in) in shapes.items()}
    start = time.perf_counter()
    low = precondition(grads, factors, QueryArguments(rank=RANK))
    seconds = time.perf_counter() - start
    print(f"threads {torch.get_num_threads()}: {seconds:.2f} s for {n_queries} queries x {len(shapes)} modules = "
          f"{seconds / n_queries / len(shapes) * 1000:.0f} ms per query and module (rank {RANK})")
    exact = precondition(grads, factors, QueryArguments(rank=None))
    for name in ("module0", "module2"):                       # tall and wide
        u, v = low.gradients[name]
        left, sigma, right = torch.linalg.svd(exact.gradients[name].double(), full_matrices=False)
        best = (left[:, :, :RANK] * sigma[:, None, :RANK]) @ right[:, :RANK]
        error = (u.double() @ v.double().transpose(1, 2) - best).norm() / best.norm()
        print(f"{name} {tuple(shapes[name])}: relative error vs float64 SVD truncation {float(error):.1e}")
