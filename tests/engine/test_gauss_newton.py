"""engine.gauss_newton against dense references on a tiny trained Llama (float64).

The product M v = (w Σ_t J_tᵀ (diag p − p pᵀ) J_t + Λ) v by forward-mode AD must equal the dense matrix built from
the logits' Jacobian row by row (reverse mode); conjugate gradients must solve M x = b like torch.linalg.solve, with
and without the EK-FAC preconditioner (which changes how fast, not where it ends)."""
import pytest
import torch

from engine.batches import Tokenized, make_batches
from engine.gauss_newton import AnchorPreconditioner, GaussNewton, conjugate_gradients
from engine.pbrf import float64_norms, use_attention_in_model_dtype
from engine.tailpatch import module_parameters
from tests.engine import oracles as O


@pytest.fixture(scope="module")
def case():
    with O.single_thread():
        setup = O.trained_setup(n_docs=6, n_queries=1, hidden=8, intermediate=16, steps=100, seed=3,
                                min_len=5, max_len=8)
        model = setup.model
        float64_norms(model)
        assert use_attention_in_model_dtype(model)
        named = dict(model.named_modules())
        parameters = module_parameters({m: named[m] for m in setup.modules})
        damping = [1e-3 * (i + 1) for i in range(len(parameters))]
        docs = [Tokenized(list(d.input_ids), list(d.labels), False) for d in setup.docs]
        batches = list(make_batches(docs, 4, 0))
        yield model, parameters, damping, batches, dense_system(model, parameters, damping, batches, 0.25)


def dense_system(model, parameters, damping, batches, weight) -> torch.Tensor:
    """w Σ_t J_tᵀ (diag p − p pᵀ) J_t + Λ, with J_t row by row from reverse mode."""
    params = list(parameters.values())
    size = sum(p.numel() for p in params)
    total = torch.zeros(size, size, dtype=torch.float64)
    for batch in batches:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        for row, position in (batch.labels != -100).nonzero().tolist():
            z = logits[row, position]
            jacobian = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
                z[k], params, retain_graph=True, allow_unused=True, materialize_grads=True)])
                for k in range(z.numel())])                                       # [V, P]
            p = torch.softmax(z.detach(), -1)
            total += weight * jacobian.T @ (torch.diag(p) - torch.outer(p, p)) @ jacobian
    lam = torch.cat([torch.full((p.numel(),), d, dtype=torch.float64) for p, d in zip(params, damping)])
    return total + torch.diag(lam)


def flat(vector):
    return torch.cat([v.reshape(-1) for v in vector])


def unflat(values, parameters):
    out, start = [], 0
    for p in parameters.values():
        out.append(values[start:start + p.numel()].reshape(p.shape).clone())
        start += p.numel()
    return out


def test_product_equals_dense_gauss_newton(case):
    model, parameters, damping, batches, dense = case
    curvature = GaussNewton(model, parameters, damping)
    v = torch.randn(dense.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = flat(curvature.product(unflat(v, parameters), [(batches, 0.25)]))
    assert torch.allclose(got, dense @ v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("preconditioned", [False, True])
def test_conjugate_gradients_solve_the_system(case, preconditioned):
    model, parameters, damping, batches, dense = case
    curvature = GaussNewton(model, parameters, damping)
    b = torch.randn(dense.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    if preconditioned:
        precondition = AnchorPreconditioner(model, parameters, damping, batches).apply
    else:
        precondition = lambda r: [t.clone() for t in r]                # noqa: E731
    result = conjugate_gradients(lambda v: curvature.product(v, [(batches, 0.25)]), precondition,
                                 unflat(b, parameters), tolerance=1e-10, max_iterations=20 * dense.shape[0])
    expected = torch.linalg.solve(dense, b)
    assert result.relative_residual <= 1e-10
    assert torch.allclose(flat(result.solution), expected, rtol=1e-6, atol=1e-8 * float(expected.abs().max()))
