"""The CUDA path (gpu-marked: skipped where no GPU is present; scripts/gpu_check.sh runs it on a GPU machine).

The same tiny Llama, documents and queries go through the whole engine (EK-FAC fit with the empirical Fisher,
query gradients, preconditioning, scoring) on the CPU in float32 and on CUDA in float32 and bfloat16. CUDA
float32 must give the CPU's scores (per-query Pearson >= 0.9999); bfloat16 vs float32 is measured and printed
(pytest -s), with only a loose floor, since bf16 keeps 8 bits of mantissa.
"""
import numpy as np
import pytest
import torch

from engine.batches import make_batches, tokenize_documents, tokenize_queries
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules, load_model
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import score_documents
from tests.tiny_models import TRAINING_TEXT, make_tiny_llama

pytestmark = pytest.mark.gpu

DOCUMENTS = [f"{line} Item {i}: {i * 7 % 13} and {1900 + i}." for i, line in enumerate(TRAINING_TEXT * 4)]
QUERIES = [("The capital of Veloria is", " Marn."), ("(7 - 4) * 7 =", " 21"), ("Solve 3 x + 4 = 10, so x =", " 2."),
           ("def add(a, b): return", " a + b")]


def engine_scores(model_dir: str, device: str, dtype: str) -> np.ndarray:
    """[Q, D] EK-FAC scores computed entirely on `device` in `dtype`, as float64 on the CPU."""
    model, tokenizer = load_model(model_dir, device=device, dtype=dtype)
    tracked = find_tracked_modules(model, "mlp")
    docs = tokenize_documents(tokenizer, DOCUMENTS, max_length=64)
    queries = tokenize_queries(tokenizer, [p for p, _ in QUERIES], [c for _, c in QUERIES], max_length=64)
    batches = list(make_batches(docs, 4, tokenizer.pad_token_id))
    factors = fit_factors(model, tracked, batches, FactorArguments(strategy="ekfac", fisher="empirical"),
                          progress=False)
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, factors, QueryArguments(damping="auto", rank=None))
    scores = np.zeros((len(QUERIES), len(DOCUMENTS)))
    for result in score_documents(model, tracked, pq, make_batches(docs, 4, tokenizer.pad_token_id), progress=False):
        scores[:, result.index] = result.scores.double().cpu().numpy()
    return scores


def pearson_per_query(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_llama(str(tmp_path_factory.mktemp("cuda") / "model"), hidden=64, layers=2, intermediate=128)


@pytest.fixture(scope="module")
def cpu_scores(model_dir):
    return engine_scores(model_dir, "cpu", "float32")


def test_cuda_float32_scores_equal_cpu_float32(model_dir, cpu_scores):
    cuda = engine_scores(model_dir, "cuda", "float32")
    pearson = pearson_per_query(cpu_scores, cuda)
    relative = np.abs(cuda - cpu_scores).max() / np.abs(cpu_scores).max()
    print(f"\nCUDA fp32 vs CPU fp32: per-query Pearson min {pearson.min():.6f}, max relative error {relative:.2e} "
          f"({torch.cuda.get_device_name()})")
    assert np.isfinite(cuda).all() and pearson.min() >= 0.9999


def test_cuda_bfloat16_against_float32_is_reported(model_dir, cpu_scores):
    bf16 = engine_scores(model_dir, "cuda", "bfloat16")
    pearson = pearson_per_query(cpu_scores, bf16)
    print(f"\nCUDA bf16 vs CPU fp32: per-query Pearson min {pearson.min():.4f}, mean {pearson.mean():.4f}")
    assert np.isfinite(bf16).all() and pearson.min() > 0.5
