"""Scoring math: factors vs explicit statistics, preconditioner vs dense solves, splits, rank-r, paths, dtypes."""
import numpy as np
import pytest
import torch

import engine.scoring as scoring
from engine.batches import make_batches
from engine.errors import EngineInputError
from engine.factors import A_VALS, A_VECS, LAMBDA, S_VALS, S_VECS, FactorArguments, Factors, fit_factors
from engine.model import find_tracked_modules
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import score_documents, token_scores
from tests.engine.test_identity import (explicit_gradient, random_documents, random_queries, rel_err, tiny_gpt2,
                                        tiny_llama)


def explicit_covariances(model, tracked, docs):
    """A = Σ a aᵀ / n_tokens and S = Σ g gᵀ / n_tokens from per-document autograd (empirical labels)."""
    sums = {n: [0.0, 0.0] for n in tracked}
    inputs, outputs = {}, {}
    def keep(name):
        def hook(module, args, output):
            output.retain_grad()
            inputs[name], outputs[name] = args[0], output
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in tracked.items()]
    n_tokens = 0
    for doc in docs:
        ids = torch.tensor([doc.input_ids])
        logits = model(input_ids=ids).logits[0]
        torch.nn.functional.cross_entropy(logits, torch.tensor(doc.labels), ignore_index=-100, reduction="sum").backward()
        for n, m in tracked.items():
            a = inputs[n][0].detach()
            if m.bias is not None:
                a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], dim=1)
            g = outputs[n].grad[0]
            sums[n][0] = sums[n][0] + a.t() @ a
            sums[n][1] = sums[n][1] + g.t() @ g
        n_tokens += len(doc.input_ids)
        model.zero_grad(set_to_none=True)
    for h in handles:
        h.remove()
    return {n: (s[0] / n_tokens, s[1] / n_tokens) for n, s in sums.items()}, n_tokens


def fit(model, tracked, docs, strategy, fisher="empirical", batch_size=3, seed=0):
    return fit_factors(model, tracked, make_batches(docs, batch_size, 0),
                       FactorArguments(strategy=strategy, fisher=fisher, seed=seed), progress=False)


def collect(model, tracked, pq, docs, batch_size=3):
    layers = torch.zeros(pq.n_queries, len(pq.modules), len(docs), dtype=torch.float64)
    norms = torch.zeros(len(docs), dtype=torch.float64)
    for result in score_documents(model, tracked, pq, make_batches(docs, batch_size, 0), progress=False):
        layers[:, :, result.index] = result.layer_scores.double()
        norms[result.index] = result.grad_norms.double()
        assert torch.allclose(result.scores.double(), result.layer_scores.double().sum(1), rtol=1e-6, atol=1e-9)
    return layers, norms


@pytest.fixture(scope="module")
def gpt2_setup():
    model = tiny_gpt2()
    tracked = find_tracked_modules(model, "mlp")
    return model, tracked, random_queries(3), random_documents(8)


def test_ekfac_factors_match_explicit_statistics(gpt2_setup):
    model, tracked, _, docs = gpt2_setup
    factors = fit(model, tracked, docs, "ekfac")
    covs, n_tokens = explicit_covariances(model, tracked, docs)
    assert factors.n_tokens == n_tokens and factors.n_documents == len(docs)
    doc_grads = [explicit_gradient(model, tracked, d)[0] for d in docs]
    for name in tracked:
        f = factors.tensors[name]
        a_cov, s_cov = covs[name]
        assert rel_err(f[A_VECS] @ torch.diag(f[A_VALS]) @ f[A_VECS].t(), a_cov) < 1e-8
        assert rel_err(f[S_VECS] @ torch.diag(f[S_VALS]) @ f[S_VECS].t(), s_cov) < 1e-8
        # Λ = mean over documents of (Q_Sᵀ G_d Q_A)²
        lam = torch.stack([(f[S_VECS].t() @ g[name] @ f[A_VECS]).square() for g in doc_grads]).mean(0)
        assert rel_err(f[LAMBDA], lam) < 1e-8


def test_eigenbasis_gradients_both_orders_agree():
    from engine.factors import eigenbasis_gradients

    g, a = torch.randn(3, 5, 7, dtype=torch.float64), torch.randn(3, 5, 4, dtype=torch.float64)
    q_s = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64))[0]
    q_a = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    expected = torch.stack([q_s.t() @ g[b].t() @ a[b] @ q_a for b in range(3)])
    for order in (True, False):
        assert rel_err(eigenbasis_gradients(g, a, q_s, q_a, rotate_tokens=order), expected) < 1e-12


def test_kfac_and_ekfac_preconditioning_solve_the_dense_systems(gpt2_setup):
    model, tracked, queries, docs = gpt2_setup
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    for strategy in ("kfac", "ekfac", "diagonal"):
        factors = fit(model, tracked, docs, strategy)
        pq = precondition(grads, factors, QueryArguments(rank=None, damping="auto"))
        for name in tracked:
            f, p, g, lam_d = factors.tensors[name], pq.gradients[name], grads[name], pq.damping[name]
            if strategy == "kfac":  # (S ⊗ A + λ I) vec(P) = vec(G)  <=>  S P A + λ P = G
                s_cov = f[S_VECS] @ torch.diag(f[S_VALS]) @ f[S_VECS].t()
                a_cov = f[A_VECS] @ torch.diag(f[A_VALS]) @ f[A_VECS].t()
                assert rel_err(s_cov @ p @ a_cov + lam_d * p, g) < 1e-8
                assert lam_d == pytest.approx(0.1 * float(torch.outer(f[S_VALS], f[A_VALS]).mean()))
            elif strategy == "ekfac":  # dense F = K diag(Λ) Kᵀ with K = Q_S ⊗ Q_A; (F + λ I) vec(P) = vec(G)
                k = torch.kron(f[S_VECS], f[A_VECS])
                dense = k @ torch.diag(f[LAMBDA].reshape(-1)) @ k.t() + lam_d * torch.eye(k.shape[0], dtype=k.dtype)
                expected = torch.linalg.solve(dense, g.reshape(g.shape[0], -1).t()).t().reshape(g.shape)
                assert rel_err(p, expected) < 1e-8
                assert lam_d == pytest.approx(0.1 * float(f[LAMBDA].mean()))
            else:
                assert rel_err(p * (f[LAMBDA] + lam_d), g) < 1e-10


def test_fixed_damping_is_used(gpt2_setup):
    model, tracked, queries, docs = gpt2_setup
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=None, damping=0.25))
    assert set(pq.damping.values()) == {0.25}
    with pytest.raises(EngineInputError):
        precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(damping="lots"))


def test_rank_r_is_truncated_svd_of_exact_and_scores_follow(gpt2_setup):
    model, tracked, queries, docs = gpt2_setup
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    factors = fit(model, tracked, docs, "ekfac")
    exact = precondition(grads, factors, QueryArguments(rank=None))
    rank = 3
    low = precondition(grads, factors, QueryArguments(rank=rank))
    doc_grads = [explicit_gradient(model, tracked, d)[0] for d in docs]
    expected = torch.zeros(len(queries), len(tracked), len(docs), dtype=torch.float64)
    for layer, name in enumerate(tracked):
        assert low.is_low_rank(name)
        u, v = low.gradients[name]
        for q in range(len(queries)):
            uu, ss, vv = np.linalg.svd(exact.gradients[name][q].numpy())
            truncated = torch.from_numpy((uu[:, :rank] * ss[:rank]) @ vv[:rank])
            assert rel_err(u[q] @ v[q].t(), truncated) < 1e-8
            for d, g in enumerate(doc_grads):
                expected[q, layer, d] = (truncated * g[name]).sum()
    layers, _ = collect(model, tracked, low, docs)
    assert rel_err(layers, expected) < 1e-6


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_materialised_and_low_rank_paths_agree(build, monkeypatch):
    model = build()
    tracked = find_tracked_modules(model, "all")
    queries, docs = random_queries(3), random_documents(7)
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=4))
    monkeypatch.setattr(scoring, "use_low_rank", lambda *args: True)
    layers_low, norms_low = collect(model, tracked, pq, docs)
    monkeypatch.setattr(scoring, "use_low_rank", lambda *args: False)
    layers_mat, norms_mat = collect(model, tracked, pq, docs)
    assert rel_err(layers_low, layers_mat) < 1e-8
    assert rel_err(norms_low, norms_mat) < 1e-8
    assert layers_mat.abs().max() > 0
    monkeypatch.setattr(scoring, "GROUP_DOCS", 1)  # flush after every batch instead of buffering all 7 documents
    layers_each, norms_each = collect(model, tracked, pq, docs)
    assert rel_err(layers_each, layers_mat) < 1e-10 and torch.equal(norms_each, norms_mat)
    monkeypatch.undo()
    fresh = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=4))
    fresh.max_dense_cache_bytes = 0  # no room to materialise U Vᵀ: the low-rank path must be taken
    assert all(scoring.use_low_rank(fresh, name, 3, 50, 1000, 1000) for name in fresh.modules if fresh.is_low_rank(name))


def test_batches_of_one_group_may_take_different_paths(gpt2_setup, monkeypatch):
    """A module materialised for one batch and low-rank for the next (the choice depends on B and T) in one flush."""
    model, tracked, queries, docs = gpt2_setup
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=3))
    expected, expected_norms = collect(model, tracked, pq, docs)
    calls = {"n": 0}
    def alternate(*args):  # per module call: low-rank on odd batches (3 tracked modules per batch here)
        calls["n"] += 1
        return ((calls["n"] - 1) // len(pq.modules)) % 2 == 1
    monkeypatch.setattr(scoring, "use_low_rank", alternate)
    layers, norms = collect(model, tracked, pq, docs)
    assert calls["n"] == len(pq.modules) * 3  # 8 documents in batches of 3: three batches, one flush
    assert rel_err(layers, expected) < 1e-6 and rel_err(norms, expected_norms) < 1e-6


@pytest.mark.parametrize("rank", [None, 3])
def test_token_scores_sum_to_document_scores(gpt2_setup, rank):
    model, tracked, queries, docs = gpt2_setup
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    pq = precondition(grads, fit(model, tracked, docs, "ekfac"), QueryArguments(rank=rank))
    layers, _ = collect(model, tracked, pq, docs)
    for d in (0, 5):
        per_token = token_scores(model, tracked, pq, docs[d]).double()
        assert per_token.shape == (len(queries), len(docs[d].input_ids))
        assert rel_err(per_token.sum(1), layers[:, :, d].sum(1)) < 1e-5


def test_scoring_and_factors_are_deterministic_on_cpu():
    model = tiny_llama(dtype=torch.float32)
    tracked = find_tracked_modules(model)
    queries, docs = random_queries(3), random_documents(6)
    runs = []
    for _ in range(2):
        factors = fit(model, tracked, docs, "ekfac", fisher="sampled", seed=7)
        grads, nats = query_gradients(model, tracked, queries, batch_size=2)
        layers, norms = collect(model, tracked, precondition(grads, factors, QueryArguments(rank=4)), docs)
        runs.append((factors, layers, norms, nats))
    (f1, l1, n1, q1), (f2, l2, n2, q2) = runs
    for name in tracked:
        for key in f1.tensors[name]:
            assert torch.equal(f1.tensors[name][key], f2.tensors[name][key])
    assert torch.equal(l1, l2) and torch.equal(n1, n2) and torch.equal(q1, q2)
    other = fit(model, tracked, docs, "ekfac", fisher="sampled", seed=8)
    assert not torch.equal(other.tensors[next(iter(tracked))][LAMBDA], f1.tensors[next(iter(tracked))][LAMBDA])


def test_bfloat16_model_gives_finite_scores_close_to_float32():
    docs, queries = random_documents(6, low=8, high=16), random_queries(3)
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = tiny_llama(dtype=dtype, hidden=32)
        tracked = find_tracked_modules(model)
        factors = fit(model, tracked, docs, "ekfac")
        assert all(t.dtype == torch.float32 for d in factors.tensors.values() for t in d.values())
        grads, nats = query_gradients(model, tracked, queries, batch_size=2)
        layers, norms = collect(model, tracked, precondition(grads, factors, QueryArguments(rank=None)), docs)
        results[dtype] = (layers.sum(1), norms, nats)
    s32, n32, q32 = results[torch.float32]
    s16, n16, q16 = results[torch.bfloat16]
    assert torch.isfinite(s16).all() and torch.isfinite(n16).all()
    for q in range(s32.shape[0]):
        assert np.corrcoef(s32[q].numpy(), s16[q].numpy())[0, 1] > 0.95
    assert rel_err(n16, n32) < 0.1 and rel_err(q16, q32) < 0.05


def test_factors_save_and_load_round_trip(gpt2_setup, tmp_path):
    model, tracked, queries, docs = gpt2_setup
    factors = fit(model, tracked, docs, "ekfac")
    grads, _ = query_gradients(model, tracked, queries, batch_size=2)
    precondition(grads, factors, QueryArguments())
    factors.save(str(tmp_path / "factors"))
    loaded = Factors.load(str(tmp_path / "factors"))
    assert (loaded.strategy, loaded.fisher, loaded.modules) == ("ekfac", "empirical", list(tracked))
    assert (loaded.n_documents, loaded.n_tokens) == (factors.n_documents, factors.n_tokens)
    for name in tracked:
        for key, tensor in factors.tensors[name].items():
            assert torch.equal(loaded.tensors[name][key], tensor)
    assert sorted(p.name for p in (tmp_path / "factors").iterdir()) == ["factors.safetensors", "meta.json"]
    with pytest.raises(EngineInputError):
        Factors.load(str(tmp_path / "nowhere"))


def fit_on_shard(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """Child process: fit ekfac factors on this rank's contiguous shard under gloo; rank 0 saves them."""
    import torch.distributed as dist

    from engine.distributed import rank_and_world, shard

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        assert rank_and_world() == (rank, world)
        model = tiny_llama(dtype=torch.float64)
        tracked = find_tracked_modules(model)
        docs = random_documents(7)
        mine = [docs[i] for i in shard(len(docs), rank, world)]
        factors = fit(model, tracked, mine, "ekfac", batch_size=2)
        if rank == 0:
            factors.save(out_dir)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_fit_the_same_factors_as_one(tmp_path):
    import torch.multiprocessing as mp

    from engine.distributed import shard

    assert [list(shard(7, r, 2)) for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6]]
    mp.spawn(fit_on_shard, args=(2, str(tmp_path / "init"), str(tmp_path / "factors")), nprocs=2, join=True)
    together = Factors.load(str(tmp_path / "factors"))
    model = tiny_llama(dtype=torch.float64)
    tracked = find_tracked_modules(model)
    alone = fit(model, tracked, random_documents(7), "ekfac", batch_size=2)
    assert (together.n_documents, together.n_tokens) == (alone.n_documents, alone.n_tokens)
    for name in tracked:
        for key in (A_VALS, S_VALS, LAMBDA):
            assert rel_err(together.tensors[name][key], alone.tensors[name][key]) < 1e-9
