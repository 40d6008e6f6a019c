"""The memory plan (issue 25, part 1): byte counts equal what the engine allocates on a tiny model, a config alone
plans a 7B model, bad configs and impossible budgets are one line with exit 2, and run refuses up front."""
import json
import os

import pytest

from engine.batches import make_batches, tokenize_documents, tokenize_queries
from engine.factors import FactorArguments, fit_factors
from engine.model import find_tracked_modules, load_model
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import within_budget
from precompute.plan import memory as pm
from precompute.__main__ import main
from precompute.plan.work import make_plan
from precompute.plan.model_shape import model_shape
from tests.precompute.conftest import SMALL_FLAGS, corpus_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLAMA_7B = os.path.join(ROOT, "scripts", "plan_configs", "llama-2-7b.json")


def workload(**changes) -> pm.Workload:
    values = dict(n_docs=24, tokens_per_doc=10, batch_tokens=24, text_bytes=1000, n_queries=5, query_tokens=12,
                  factor_docs=16, batch_size=4, query_rank=4)
    return pm.Workload(**{**values, **changes})


@pytest.mark.parametrize("strategy", ["ekfac", "kfac", "diagonal"])
def test_factor_and_query_bytes_equal_what_the_engine_allocates(world, strategy):
    model, tokenizer = load_model(world["model"])
    tracked = find_tracked_modules(model, "all")
    docs = tokenize_documents(tokenizer, [row["text"] for row in corpus_rows(8)], 24)
    factors = fit_factors(model, tracked, make_batches(docs, 4, tokenizer.pad_token_id),
                          FactorArguments(strategy), progress=False)
    held = sum(t.numel() * t.element_size() for module in factors.tensors.values() for t in module.values())
    shape = model_shape(world["model"], "all")
    assert list(shape.modules) == list(tracked)
    assert pm.factor_bytes_per_rank(shape, strategy, "float32", 1) == (held, list(tracked))
    queries = tokenize_queries(tokenizer, ["The capital of", "Solve 3 x"], [" Marn.", " = 2"], 24)
    grads, _ = query_gradients(model, tracked, queries, 2)
    pq = precondition(grads, factors, QueryArguments(rank=4))
    stored = sum(sum(t.numel() * t.element_size() for t in (v if isinstance(v, tuple) else (v,)))
                 for v in pq.gradients.values())
    assert pm.query_storage_bytes(shape, list(tracked), 2, 4) == stored
    assert pm.query_bytes(shape, list(tracked), workload(), 2)["gradients"] == \
        sum(g.numel() * g.element_size() for g in grads.values())
    budget = stored // 2 + 100                        # one query and a 100-byte dense cache per scoring pass
    parts = within_budget(pq, budget)
    assert pm.scoring_query_batches(shape, list(tracked), workload(n_queries=2, memory_budget=budget)) == \
        (parts[0].n_queries, len(parts), parts[0].max_dense_cache_bytes) == (1, 2, 100)


def test_shards_split_the_factors(world):
    shape = model_shape(world["model"], "all")
    total = pm.factor_bytes_per_rank(shape, "ekfac", "float32", 1)[0]
    largest = max(pm.module_factor_bytes("ekfac", *d, "float32") for d in shape.modules.values())
    per_rank, _ = pm.factor_bytes_per_rank(shape, "ekfac", "float32", 3)
    assert total / 3 <= per_rank <= total / 3 + largest
    assert pm.factor_bytes_per_rank(shape, "ekfac", "bfloat16", 1)[0] * 2 == total


def test_a_config_alone_plans_llama_7b_on_8_gpus(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["plan", "--model", LLAMA_7B, "--docs", "5000000", "--tokens-per-doc", "512", "--max-length", "512",
                 "--queries", "100", "--device", "cuda", "--dtype", "bfloat16", "--nproc", "8",
                 "--memory-per-rank", "80GiB", "--factor-docs", "100000", "--json", str(out)])
    assert code == 0
    plan = json.loads(out.read_text())
    shape = model_shape(LLAMA_7B)
    assert shape.n_parameters == 6_738_415_616            # Llama-2-7B's published parameter count
    assert len(shape.modules) == 96 and shape.modules["model.layers.0.mlp.down_proj"] == (4096, 11008)
    assert plan["fits"] and plan["peak_bytes_per_rank"] <= 80 * 2**30
    weights = plan["stages"]["scoring"]["device"]["weights"]
    assert weights == 6_738_415_616 * 2
    # one rank holds every module's float32 factors at one shard: (Q_A, Q_S, Λ, eigenvalues) of 96 modules
    assert pm.factor_bytes_per_rank(shape, "ekfac", "float32", 1)[0] == 4 * sum(
        i * i + i + o * o + o + o * i for o, i in shape.modules.values())
    assert "peak per rank" in capsys.readouterr().out


def test_nothing_fits_is_one_line_with_the_reason(capsys):
    code = main(["plan", "--model", LLAMA_7B, "--docs", "1000", "--tokens-per-doc", "512", "--queries", "100",
                 "--device", "cuda", "--memory-per-rank", "16GiB"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("error: nothing fits in 16.00 GiB per rank: at batch size 1")


@pytest.mark.parametrize("case", ["not JSON", "no model_type", "unknown model_type", "missing", "bad size"])
def test_unreadable_config_is_one_line_exit_2(tmp_path, capsys, case):
    config = tmp_path / "config.json"
    size = "80GiB"
    if case == "not JSON":
        config.write_text("{hidden_size: 4096")
    elif case == "no model_type":
        config.write_text(json.dumps({"hidden_size": 64}))
    elif case == "unknown model_type":
        config.write_text(json.dumps({"model_type": "no-such-architecture"}))
    elif case == "bad size":
        config, size = LLAMA_7B, "eighty"
    else:
        config = tmp_path / "absent.json"
    code = main(["plan", "--model", str(config), "--docs", "10", "--tokens-per-doc", "8", "--queries", "2",
                 "--memory-per-rank", size])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("error: ")
    assert ("--memory-per-rank" if case == "bad size" else str(config)) in error


def test_run_refuses_an_over_budget_setting_up_front(world, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--quiet", "run", "--model", world["model"], "--corpus", world["corpus"], "--queries",
                 world["queries"], "--out", str(out), *SMALL_FLAGS, "--memory-per-rank", "300MiB"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert error.startswith("error: --memory-per-rank 300MiB: the plan needs ")
    assert "nothing fits in 300.00 MiB per rank" in error and "most of it runtime" in error
    assert not (out / "manifest.json").exists() and not (out / "factors").exists()


def test_run_refuses_a_memory_budget_below_one_query_before_fitting(world, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--quiet", "run", "--model", world["model"], "--corpus", world["corpus"], "--queries",
                 world["queries"], "--out", str(out), *SMALL_FLAGS, "--memory-budget", "1000"])
    assert code == 2
    shape = model_shape(world["model"])                 # --query-rank 4 over the MLP linears, float32
    per_query = 4 * sum(4 * (o + i) for o, i in shape.modules.values())
    assert capsys.readouterr().err.strip() == (
        f"error: --memory-budget 1,000 bytes is below one query's preconditioned gradients ({per_query:,} bytes "
        f"over {len(shape.modules)} modules)")
    assert not (out / "factors").exists()


def test_budget_choice_halves_the_batch_until_it_fits(world):
    shape = model_shape(world["model"], "all")
    w = workload(batch_size=64, batch_tokens=256)
    big = make_plan(shape, w)
    small = make_plan(shape, pm.Workload(**{**w.__dict__, "batch_size": 8}))
    chosen = make_plan(shape, w, memory_per_rank=(big.peak_bytes_per_rank + small.peak_bytes_per_rank) // 2)
    assert chosen.fits and 8 <= chosen.settings["batch_size"] < 64
    assert chosen.peak_bytes_per_rank <= (big.peak_bytes_per_rank + small.peak_bytes_per_rank) // 2
    assert big.peak_bytes_per_rank > small.peak_bytes_per_rank
