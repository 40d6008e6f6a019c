"""Independent reference computations for the engine's correctness tests (no engine code used here).

Everything is computed the slow, obvious way in float64: per-document gradients with plain autograd, covariances
from per-token hooks, eigendecompositions, dense (p × p) preconditioner and Fisher matrices. Conventions follow
kronfluence 1.0.1: A and S are averaged over non-padding tokens, Λ over documents, damping "auto" = 0.1·mean(Λ).
Flattening is row-major: vec(G)[i·d_in + j] = G[i, j], so the Kronecker eigenbasis is kron(Q_S, Q_A).
"""
from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

MLP_SUFFIXES = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


# ----------------------------------------------------------------------------------------------- data and models
@dataclass
class Item:
    """A document or query: labels[i] is the target of position i (-100 = not scored)."""
    input_ids: list[int]
    labels: list[int]


def document(ids: list[int]) -> Item:
    """Every next token is a target."""
    return Item(list(ids), list(ids[1:]) + [-100])


def query(prompt: list[int], completion: list[int]) -> Item:
    """Only completion tokens are targets (prompt masked)."""
    ids = list(prompt) + list(completion)
    labels = [-100] * (len(prompt) - 1) + list(completion) + [-100]
    return Item(ids, labels)


def markov_sequences(n: int, vocab: int, min_len: int, max_len: int, seed: int) -> list[list[int]]:
    """Token sequences from a sparse random Markov chain (each token has ~3 likely successors): learnable text."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.full((vocab, vocab), -4.0)
    for t in range(vocab):
        logits[t, torch.randint(2, vocab, (3,), generator=g)] = 2.0
    probs = torch.softmax(logits, -1)
    out = []
    for _ in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        seq = [int(torch.randint(2, vocab, (1,), generator=g))]
        for _ in range(length - 1):
            seq.append(int(torch.multinomial(probs[seq[-1]], 1, generator=g)))
        out.append(seq)
    return out


def tiny_llama(hidden: int = 32, intermediate: int = 64, vocab: int = 64, layers: int = 2, seed: int = 0):
    """A seeded random 2-layer LlamaForCausalLM (pad id 0)."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=1,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def pad(items: list[Item], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad to a common length: input_ids, attention_mask, labels (-100 on padding)."""
    T = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), T), dtype=torch.long)
    labels = torch.full((len(items), T), -100, dtype=torch.long)
    for b, it in enumerate(items):
        n = len(it.input_ids)
        ids[b, :n], mask[b, :n], labels[b, :n] = torch.tensor(it.input_ids), 1, torch.tensor(it.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def summed_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ over scored positions of −log p(label | prefix)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1), ignore_index=-100,
                           reduction="sum")


def train(model, docs: list[Item], steps: int, lr: float = 3e-3, batch_size: int = 128, seed: int = 0):
    """Adam on the mean per-token NLL over seeded random minibatches; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = pad([docs[i] for i in torch.randperm(len(docs), generator=g)[:batch_size].tolist()])
        opt.zero_grad()
        (summed_nll(model, batch) / (batch["labels"] != -100).sum()).backward()
        opt.step()
    return model.eval()


@dataclass
class Setup:
    model: torch.nn.Module            # float64, eval
    modules: list[str]                # tracked MLP linears, in named_modules order
    docs: list[Item]
    queries: list[Item]


@functools.lru_cache(maxsize=None)
def trained_setup(n_docs: int = 64, n_queries: int = 8, hidden: int = 32, intermediate: int = 64,
                  steps: int = 300, seed: int = 0, min_len: int = 8, max_len: int = 16) -> Setup:
    """A tiny 2-layer Llama trained on Markov-chain documents; queries = held-out prompt/completion pairs."""
    vocab = 64
    seqs = markov_sequences(n_docs + n_queries, vocab, min_len, max_len, seed)
    docs = [document(s) for s in seqs[:n_docs]]
    queries = [query(s[:-4], s[-4:]) for s in seqs[n_docs:]]
    model = train(tiny_llama(hidden, intermediate, vocab, seed=seed), docs, steps, seed=seed)
    return Setup(model.double(), mlp_module_names(model), docs, queries)


def mlp_module_names(model) -> list[str]:
    return [n for n, _ in model.named_modules() if n.endswith(MLP_SUFFIXES)]


# ------------------------------------------------------------------------------------------------- gradients
def weight_matrix_grad(module) -> torch.Tensor:
    """The layer's gradient as [d_out, d_in(+1 bias column)] (transformers' Conv1D stores W as [d_in, d_out])."""
    g = module.weight.grad
    g = g.T if type(module).__name__ == "Conv1D" else g
    return torch.cat([g, module.bias.grad[:, None]], 1) if module.bias is not None else g


def per_item_grads(model, modules: list[str], items: list[Item]) -> dict[str, torch.Tensor]:
    """G_i = ∂(Σ_t −log p)/∂W per item and module, by plain autograd one item at a time: [N, d_out, d_in(+1)]."""
    named = dict(model.named_modules())
    out = {m: [] for m in modules}
    for it in items:
        model.zero_grad(set_to_none=True)
        summed_nll(model, pad([it])).backward()
        for m in modules:
            out[m].append(weight_matrix_grad(named[m]).detach().to(torch.float64))
    model.zero_grad(set_to_none=True)
    return {m: torch.stack(v) for m, v in out.items()}


def token_covariances(model, modules: list[str], items: list[Item]):
    """A = mean_t a_t a_tᵀ (a with a 1 appended for a bias) and S = mean_t g_t g_tᵀ over all non-padding tokens,
    g = ∂(summed NLL)/∂(layer output)."""
    named = dict(model.named_modules())
    acts, outs, handles = {}, {}, []
    for m in modules:
        def hook(mod, inp, out, m=m):
            a = inp[0].detach()[0]
            acts[m] = torch.cat([a, a.new_ones(len(a), 1)], 1) if mod.bias is not None else a
            out.retain_grad()
            outs[m] = out
        handles.append(named[m].register_forward_hook(hook))
    A = {m: 0.0 for m in modules}
    S = {m: 0.0 for m in modules}
    n_tokens = 0
    try:
        for it in items:
            summed_nll(model, pad([it])).backward()
            for m in modules:
                a, g = acts[m].double(), outs[m].grad[0].double()
                A[m] = A[m] + a.T @ a
                S[m] = S[m] + g.T @ g
            n_tokens += len(it.input_ids)
            model.zero_grad(set_to_none=True)
    finally:
        for h in handles:
            h.remove()
    return {m: A[m] / n_tokens for m in modules}, {m: S[m] / n_tokens for m in modules}


# ----------------------------------------------------------------------------------------- preconditioners
def eigenbasis(A: torch.Tensor, S: torch.Tensor):
    """A = Q_A diag(eA) Q_Aᵀ, S = Q_S diag(eS) Q_Sᵀ (float64 eigh of the symmetrised matrices)."""
    eA, QA = torch.linalg.eigh(0.5 * (A + A.T).double())
    eS, QS = torch.linalg.eigh(0.5 * (S + S.T).double())
    return QA, eA, QS, eS


def ekfac_lambda(doc_grads: torch.Tensor, QA: torch.Tensor, QS: torch.Tensor) -> torch.Tensor:
    """Λ = mean_d (Q_Sᵀ G_d Q_A)² (elementwise): [d_out, d_in]."""
    return (QS.T @ doc_grads.double() @ QA).square().mean(0)


def dense_eigen_preconditioner(QA, QS, curvature: torch.Tensor, damping: float) -> torch.Tensor:
    """P = K diag(1/(vec Λ + λ)) Kᵀ with K = kron(Q_S, Q_A) (row-major vec): [p, p]."""
    K = torch.kron(QS.double(), QA.double())
    return (K / (curvature.double().reshape(-1) + damping)) @ K.T


def reference_preconditioners(strategy: str, doc_grads: dict, A: dict, S: dict) -> tuple[dict, dict]:
    """Per module the dense damped inverse curvature [p, p] and its auto damping 0.1·mean(curvature)."""
    P, damping = {}, {}
    for m, G in doc_grads.items():
        if strategy == "diagonal":
            lam = G.double().square().mean(0)                          # E[G²] per parameter
            damping[m] = 0.1 * float(lam.mean())
            P[m] = torch.diag(1.0 / (lam.reshape(-1) + damping[m]))
            continue
        QA, eA, QS, eS = eigenbasis(A[m], S[m])
        lam = torch.outer(eS, eA) if strategy == "kfac" else ekfac_lambda(G, QA, QS)
        damping[m] = 0.1 * float(lam.mean())
        P[m] = dense_eigen_preconditioner(QA, QS, lam, damping[m])
    return P, damping


def scores_with(P: dict, query_grads: dict, doc_grads: dict) -> torch.Tensor:
    """score[q, d] = Σ_modules vec(G_q)ᵀ P vec(G_d): [Q, N]."""
    total = 0.0
    for m, Pm in P.items():
        gq = query_grads[m].double().flatten(1)
        gd = doc_grads[m].double().flatten(1)
        total = total + gq @ Pm @ gd.T
    return total


def exact_influence(query_grads: dict, doc_grads: dict, damping_scale: float = 0.1) -> torch.Tensor:
    """Σ_modules g_qᵀ (F + λI)⁻¹ g_d, F = mean_d g_d g_dᵀ (dense empirical Fisher), λ = 0.1·tr(F)/p: [Q, N].

    0.1·tr(F)/p is 0.1 × F's mean eigenvalue, and equals EK-FAC's auto damping 0.1·mean(Λ) exactly
    (Σ Λ = mean_d ‖Q_Sᵀ G_d Q_A‖² = mean_d ‖G_d‖² = tr F), so both use the same λ."""
    total = 0.0
    for m, G in doc_grads.items():
        gd = G.double().flatten(1)                                    # [N, p]
        Fm = gd.T @ gd / gd.shape[0]
        lam = damping_scale * float(torch.diagonal(Fm).mean())
        L = torch.linalg.cholesky(Fm + lam * torch.eye(Fm.shape[0], dtype=Fm.dtype))
        total = total + query_grads[m].double().flatten(1) @ torch.cholesky_solve(gd.T, L)
    return total


def pearson_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of x[q] and y[q] for each row q."""
    x = x.double() - x.double().mean(1, keepdim=True)
    y = y.double() - y.double().mean(1, keepdim=True)
    return (x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1))


# ------------------------------------------------------------------------------------------------ kronfluence
def kronfluence_scores(model, modules: list[str], docs: list[Item], queries: list[Item], workdir: str,
                       strategy: str = "ekfac") -> torch.Tensor:
    """kronfluence 1.0.1 pairwise scores [Q, N] via its public API: empirical Fisher, damping_factor=None
    (0.1·mean eigenvalue), no query low rank, float64 everywhere; loss = measurement = summed NLL."""
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class SummedNLLTask(Task):
        def compute_train_loss(self, batch, model, sample=False):
            if sample:
                raise NotImplementedError("empirical Fisher only")
            return summed_nll(model, batch)

        def compute_measurement(self, batch, model):
            return summed_nll(model, batch)

        def get_influence_tracked_modules(self):
            return list(modules)

        def get_attention_mask(self, batch):
            return batch["attention_mask"]

    def rows(items):
        batch = pad(items)
        return [{k: v[i] for k, v in batch.items()} for i in range(len(items))]

    task = SummedNLLTask()
    wrapped = prepare_model(copy.deepcopy(model).double(), task)
    analyzer = Analyzer("oracle", wrapped, task, cpu=True, disable_tqdm=True, output_dir=workdir)
    f64 = torch.float64
    factor_args = FactorArguments(strategy=strategy, use_empirical_fisher=True, activation_covariance_dtype=f64,
                                  gradient_covariance_dtype=f64, per_sample_gradient_dtype=f64, lambda_dtype=f64)
    analyzer.fit_all_factors("f", rows(docs), per_device_batch_size=16, factor_args=factor_args,
                             overwrite_output_dir=True)
    score_args = ScoreArguments(damping_factor=None, query_gradient_low_rank=None, per_sample_gradient_dtype=f64,
                                precondition_dtype=f64, score_dtype=f64)
    analyzer.compute_pairwise_scores("s", "f", rows(queries), rows(docs), per_device_query_batch_size=8,
                                     per_device_train_batch_size=16, score_args=score_args, overwrite_output_dir=True)
    return analyzer.load_pairwise_scores("s")["all_modules"].double()


# ------------------------------------------------------------------------------------- the engine under test
def engine_scores(model, modules: list[str], docs: list[Item], queries: list[Item], strategy: str,
                  fisher: str = "empirical", batch_size: int = 16):
    """Our engine end to end (full-rank queries, auto damping): (scores [Q, N] float64, Factors, PreconditionedQueries)."""
    from engine.batches import Tokenized, make_batches
    from engine.factors import FactorArguments, fit_factors
    from engine.precondition import QueryArguments, precondition, query_gradients
    from engine.scoring import score_documents

    named = dict(model.named_modules())
    tracked = {m: named[m] for m in modules}
    as_tok = lambda items: [Tokenized(list(it.input_ids), list(it.labels), False) for it in items]  # noqa: E731
    doc_toks = as_tok(docs)
    factors = fit_factors(model, tracked, list(make_batches(doc_toks, batch_size, 0)),
                          FactorArguments(strategy=strategy, fisher=fisher), progress=False)
    grads, _ = query_gradients(model, tracked, as_tok(queries), batch_size)
    pq = precondition(grads, factors, QueryArguments(damping="auto", rank=None))
    scores = torch.zeros(len(queries), len(docs), dtype=torch.float64)
    for result in score_documents(model, tracked, pq, make_batches(doc_toks, batch_size, 0), progress=False):
        scores[:, result.index] = result.scores.double()
    return scores, factors, pq


# ------------------------------------------------------------------- the shared trained case (exact, kronfluence)
def trained_case() -> Setup:
    """512 Markov documents of 6–12 tokens, 8 held-out queries (4-token completions), hidden 16 / intermediate 32,
    150 Adam steps: per module p = 512 parameters, so the 512-document empirical Fisher is meaningful."""
    return trained_setup(n_docs=512, n_queries=8, hidden=16, intermediate=32, steps=150, seed=0, min_len=6,
                         max_len=12)


@functools.lru_cache(maxsize=None)
def trained_case_grads() -> tuple[dict, dict]:
    """(query gradients, document gradients) of the trained case by plain autograd."""
    s = trained_case()
    return per_item_grads(s.model, s.modules, s.queries), per_item_grads(s.model, s.modules, s.docs)


_KRONFLUENCE: dict = {}


def kronfluence_trained_case(workdir: str) -> torch.Tensor:
    """kronfluence EK-FAC scores of the trained case, computed once per process (first caller's workdir)."""
    if "ekfac" not in _KRONFLUENCE:
        s = trained_case()
        _KRONFLUENCE["ekfac"] = kronfluence_scores(s.model, s.modules, s.docs, s.queries, workdir, "ekfac")
    return _KRONFLUENCE["ekfac"]


@functools.lru_cache(maxsize=None)
def engine_trained_case(strategy: str) -> torch.Tensor:
    s = trained_case()
    return engine_scores(s.model, s.modules, s.docs, s.queries, strategy, batch_size=64)[0]


@contextlib.contextmanager
def single_thread():
    """Tiny models are overhead-bound: one intra-op thread is much faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
