"""PBRF responses against the exact damped Gauss-Newton prediction on a tiny trained model.

Exact (float64): G = the dense Hessian of K(θ) = mean_{d∈H} Σ_t KL(p_θs ‖ p_θ) at θs over the tracked MLP
parameters (computed by double backward, row by row; at θs it is the Gauss-Newton / Fisher matrix exactly), and
Δ_pred(q, S) = ε ∇log p_qᵀ (G + λ)⁻¹ (−Σ_{d∈S} ∇L_d), λ per module the EK-FAC run's damping. The solver's
measured Δ must match it (first order at small ε), and the LDS of the exact influence against the measured
responses must be ≈ 1; the engine's EK-FAC LDS is printed next to it.
"""
import numpy as np
import pytest
import torch

from engine.batches import Tokenized
from engine.pbrf import PBRFArguments, ProximalResponse, float64_norms
from engine.tailpatch import module_parameters
from precompute.analysis.lds import lds_per_query
from tests.engine import oracles as O

pytestmark = pytest.mark.slow
N_SETS, SET_SIZE, EPSILON = 12, 8, 0.0005
ARGUMENTS = PBRFArguments(max_iterations=2000)


@pytest.fixture(scope="module")
def case():
    with O.single_thread():
        setup = O.trained_setup(n_docs=48, n_queries=6, hidden=8, intermediate=16, steps=200, seed=1,
                                min_len=6, max_len=10)
        model = setup.model
        assert float64_norms(model) == 5                 # 2 layers × 2 norms + the final norm
        named = dict(model.named_modules())
        tracked = {m: named[m] for m in setup.modules}
        scores, _, pq = O.engine_scores(model, setup.modules, setup.docs, setup.queries, "ekfac",
                                        fisher="sampled", batch_size=64)
        identity = O.engine_scores(model, setup.modules, setup.docs, setup.queries, "identity", batch_size=64)[0]
        parameters = module_parameters(tracked)
        damping = {name: pq.damping[name.rsplit(".", 1)[0]] for name in parameters}
        as_tok = lambda items: [Tokenized(list(i.input_ids), list(i.labels), False) for i in items]  # noqa: E731
        anchors, queries = as_tok(setup.docs[:32]), as_tok(setup.queries)
        response = ProximalResponse(model, parameters, damping, anchors, queries, batch_size=64)
        rng = np.random.default_rng(0)
        sets = np.stack([rng.choice(len(setup.docs), SET_SIZE, replace=False) for _ in range(N_SETS)])
        docs = as_tok(setup.docs)
        measured, iterations = [], []
        for columns in sets:
            result = response.respond([docs[c] for c in columns], EPSILON, ARGUMENTS)
            assert result.relative_grad_norm <= ARGUMENTS.tolerance, result
            iterations.append(result.iterations)
            measured.append(result.delta_logprob.numpy())
        exact = exact_predictions(model, parameters, damping, setup, sets)
        yield dict(measured=np.stack(measured), exact=EPSILON * exact, sets=sets, ekfac=scores.numpy(),
                   identity=identity.numpy(), response=response, docs=docs, iterations=iterations)


def flat_grad(model, parameters, item) -> torch.Tensor:
    loss = O.summed_nll(model, O.pad([item]))
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(parameters.values()))])


def exact_predictions(model, parameters, damping, setup, sets) -> np.ndarray:
    """[M, Q] ∇log p_qᵀ (G + λ)⁻¹ (−Σ_{d∈S_m} ∇L_d) with the dense Hessian G of the anchors' KL at θs."""
    params = list(parameters.values())
    model.set_attn_implementation("eager")          # double backward: SDPA on CPU has no second derivative
    batch = O.pad(setup.docs[:32])
    with torch.no_grad():
        reference = torch.log_softmax(model(input_ids=batch["input_ids"],
                                            attention_mask=batch["attention_mask"]).logits, -1)
    mask = batch["labels"] != -100
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    log_q = torch.log_softmax(logits, -1)
    kl = (reference.exp() * (reference - log_q))[mask].sum() / 32
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, params, create_graph=True)])
    hessian = torch.stack([torch.cat([h.reshape(-1) for h in torch.autograd.grad(grad[i], params,
                                                                                 retain_graph=True)])
                           for i in range(len(grad))])
    lam = torch.cat([torch.full((p.numel(),), damping[n], dtype=torch.float64) for n, p in parameters.items()])
    system = 0.5 * (hessian + hessian.T) + torch.diag(lam)
    queries = torch.stack([-flat_grad(model, parameters, q) for q in setup.queries])      # ∇ log p = −∇ NLL
    docs = torch.stack([-flat_grad(model, parameters, d) for d in setup.docs])            # −∇L_d
    influence = queries @ torch.linalg.solve(system, docs.T)                             # [Q, N]
    return np.stack([influence[:, columns].sum(1).detach().numpy() for columns in sets])


def test_pbrf_matches_exact_damped_gauss_newton(case):
    measured, exact = case["measured"].ravel(), case["exact"].ravel()
    pearson = float(np.corrcoef(measured, exact)[0, 1])
    print(f"\nPBRF vs exact first order: Pearson {pearson:.5f}, median |Δ| {np.median(np.abs(measured)):.3g}, "
          f"CG iterations per set {np.median(case['iterations']):.0f} (median)")
    assert pearson >= 0.99


def test_lds_exact_near_one_and_ekfac_reported(case):
    def lds(scores):
        predicted = np.stack([scores[:, columns].sum(1) for columns in case["sets"]])
        return lds_per_query(case["measured"], predicted)
    exact = lds_per_query(case["measured"], case["exact"])
    ekfac, identity = lds(case["ekfac"]), lds(case["identity"])
    print(f"\nLDS vs PBRF: exact {exact.mean():.3f}, ekfac {ekfac.mean():.3f}, identity {identity.mean():.3f}")
    assert exact.mean() >= 0.95
    assert np.isfinite(ekfac).all() and np.isfinite(identity).all()


def test_linear_in_epsilon_and_parameters_restored(case):
    response, docs = case["response"], case["docs"]
    before = [p.detach().clone() for p in response.patch.parameters]
    documents = [docs[c] for c in case["sets"][0]]
    one = response.respond(documents, EPSILON, ARGUMENTS).delta_logprob
    two = response.respond(documents, 2 * EPSILON, ARGUMENTS).delta_logprob
    assert all(torch.equal(a, b) for a, b in zip(before, response.patch.parameters))
    ratio = (two / one).numpy()
    assert np.median(np.abs(ratio - 2.0)) < 0.05, ratio
