"""ekfac / kfac / diagonal with full-rank queries == an explicit dense computation of the same preconditioner.

Reference (float64): per-document and per-query gradients by plain autograd, A and S from per-token hooks, eigh,
Λ = mean_d (Q_Sᵀ G_d Q_A)², P = kron(Q_S, Q_A) diag(1/(vec Λ + λ)) kron(Q_S, Q_A)ᵀ as a dense p × p matrix,
score = vec(G_q)ᵀ P vec(G_d) summed over modules. Tiny Llama (no bias) and GPT-2 (Conv1D + bias) models.
"""
import functools

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from tests.engine import oracles as O

TOL = 1e-4   # engine scores come back as float32


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with O.single_thread():
        yield


@functools.lru_cache(maxsize=None)
def llama_case() -> O.Setup:
    """64 variable-length documents (batches of 16 are padded), 6 queries, 30 training steps."""
    return O.trained_setup(n_docs=64, n_queries=6, hidden=16, intermediate=32, steps=30, seed=3)


@functools.lru_cache(maxsize=None)
def gpt2_case() -> O.Setup:
    base = llama_case()
    torch.manual_seed(4)
    config = GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    model = GPT2LMHeadModel(config).double().eval()
    modules = [n for n, _ in model.named_modules() if n.endswith(("mlp.c_fc", "mlp.c_proj"))]
    return O.Setup(model, modules, base.docs, base.queries)


@functools.lru_cache(maxsize=None)
def reference_inputs(case: str):
    setup = llama_case() if case == "llama" else gpt2_case()
    doc_grads = O.per_item_grads(setup.model, setup.modules, setup.docs)
    query_grads = O.per_item_grads(setup.model, setup.modules, setup.queries)
    A, S = O.token_covariances(setup.model, setup.modules, setup.docs)
    return setup, doc_grads, query_grads, A, S


@functools.lru_cache(maxsize=None)
def engine_run(case: str, strategy: str):
    setup = llama_case() if case == "llama" else gpt2_case()
    return O.engine_scores(setup.model, setup.modules, setup.docs, setup.queries, strategy)


def rel_err(x, y) -> float:
    return float((x.double() - y.double()).norm() / y.double().norm())


@pytest.mark.parametrize("case,strategy", [("llama", "ekfac"), ("llama", "kfac"), ("llama", "diagonal"),
                                           ("gpt2", "ekfac"), ("gpt2", "kfac")])
def test_scores_equal_dense_reference(case, strategy):
    setup, doc_grads, query_grads, A, S = reference_inputs(case)
    ours, factors, pq = engine_run(case, strategy)
    P, damping = O.reference_preconditioners(strategy, doc_grads, A, S)
    reference = O.scores_with(P, query_grads, doc_grads)
    err = rel_err(ours, reference)
    print(f"\n{case} {strategy}: rel err vs independent dense reference {err:.2e}")
    assert err < TOL
    for m in setup.modules:  # auto damping = 0.1 · mean(Λ) of the module (kfac: Λ = λ_S ⊗ λ_A)
        assert pq.damping[m] == pytest.approx(damping[m], rel=1e-6)


@pytest.mark.parametrize("case,strategy", [("llama", "ekfac"), ("llama", "kfac"), ("gpt2", "ekfac")])
def test_factors_equal_explicit_statistics(case, strategy):
    """The engine's fitted factors themselves: A, S reconstructed from its eigenpairs, Λ from its eigenvectors,
    and its scores == the dense preconditioner built from its own factors."""
    setup, doc_grads, query_grads, A, S = reference_inputs(case)
    ours, factors, pq = engine_run(case, strategy)
    P = {}
    for m in setup.modules:
        f = {k: v.double() for k, v in factors.tensors[m].items()}
        QA, QS = f["a_eigvecs"], f["s_eigvecs"]
        assert rel_err(QA @ torch.diag(f["a_eigvals"]) @ QA.T, A[m]) < 1e-8      # A = mean_t a aᵀ
        assert rel_err(QS @ torch.diag(f["s_eigvals"]) @ QS.T, S[m]) < 1e-8      # S = mean_t g gᵀ
        if strategy == "ekfac":
            lam = O.ekfac_lambda(doc_grads[m], QA, QS)                           # Λ = mean_d (Q_Sᵀ G_d Q_A)²
            assert rel_err(f["lambda"], lam) < 1e-8
        else:
            lam = torch.outer(f["s_eigvals"], f["a_eigvals"])
        assert pq.damping[m] == pytest.approx(0.1 * float(lam.mean()), rel=1e-8)
        P[m] = O.dense_eigen_preconditioner(QA, QS, lam, pq.damping[m])
    assert rel_err(ours, O.scores_with(P, query_grads, doc_grads)) < TOL


def test_damping_rule_matches_fisher_trace():
    """mean(Λ) = tr(F)/p: EK-FAC's auto damping equals 0.1 × the mean eigenvalue of the dense empirical Fisher."""
    setup, doc_grads, _, A, S = reference_inputs("llama")
    for m, G in doc_grads.items():
        QA, _, QS, _ = O.eigenbasis(A[m], S[m])
        gd = G.flatten(1)
        assert float(O.ekfac_lambda(G, QA, QS).mean()) == pytest.approx(float((gd * gd).sum(1).mean() / gd.shape[1]),
                                                                          rel=1e-10)
