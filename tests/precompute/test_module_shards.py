"""Factors sharded by module over gloo ranks (--module-shards) equal one process; byte accounting; the
partition bound; 16-bit factor storage; query batches under --memory-budget."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from engine.batches import make_batches, tokenize_documents, tokenize_queries
from engine.distributed import Grid
from engine.factors import (FactorArguments, Factors, factor_bytes, fit_factors, partition_modules)
from engine.model import find_tracked_modules, load_model
from engine.precondition import QueryArguments, precondition, query_gradients
from engine.scoring import score_documents, within_budget
from precompute.rundir.errors import UserInputError
from precompute.pipeline.settings import Settings
from tests.precompute.conftest import corpus_rows, query_rows

SHARD_SETTINGS = dict(batch_size=4, chunk_docs=6, max_length=24, token_topk=2, query_rank=4, factor_docs=16)


def tiny_setup(world):
    model, tokenizer = load_model(world["model"], device="cpu", dtype="float32")
    tracked = find_tracked_modules(model, "mlp")
    docs = tokenize_documents(tokenizer, [row["text"] for row in corpus_rows()], 24)
    queries = tokenize_queries(tokenizer, [q["prompt"] for q in query_rows()], [q["completion"] for q in query_rows()],
                               24)
    return model, tokenizer, tracked, docs, queries


def scores_of(model, tracked, pq, docs, pad_id):
    parts = [r.scores for r in score_documents(model, tracked, pq, list(make_batches(docs, 4, pad_id)), False)]
    return torch.cat(parts, dim=1).double()


def pearson_per_query(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(x.numpy(), y.numpy())])


def test_partition_bound_and_bytes_per_rank():
    rng = np.random.default_rng(0)
    shapes = {f"m{i}": [int(rng.integers(4, 300)), int(rng.integers(4, 300))] for i in range(23)}
    size = {n: factor_bytes("ekfac", *s) for n, s in shapes.items()}
    for shards in (1, 2, 3, 5, 8):
        parts = partition_modules(shapes, "ekfac", shards)
        assert sorted(n for part in parts for n in part) == sorted(shapes)
        for part in parts:
            assert part == [n for n in shapes if n in part]                       # module order kept
            assert sum(size[n] for n in part) <= sum(size.values()) / shards + max(size.values())
    with pytest.raises(Exception, match="module shards"):
        partition_modules(shapes, "ekfac", 24)


@pytest.mark.parametrize("strategy", ["ekfac", "kfac", "diagonal"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_factor_bytes_is_what_is_stored(world, strategy, dtype):
    model, tokenizer, tracked, docs, _ = tiny_setup(world)
    factors = fit_factors(model, tracked, make_batches(docs[:8], 4, tokenizer.pad_token_id),
                          FactorArguments(strategy, "empirical", dtype=dtype), progress=False)
    for name in tracked:
        stored = sum(t.numel() * t.element_size() for t in factors.tensors[name].values())
        assert stored == factor_bytes(strategy, *factors.shapes[name], dtype)
        assert {t.dtype for t in factors.tensors[name].values()} == {getattr(torch, dtype)}


def test_module_shards_in_one_process_equal_the_whole_and_load_alone(world, tmp_path):
    """Grid(k, K, K) without torch.distributed: each shard fits exactly the whole fit's tensors of its modules;
    the shard files load back per module."""
    model, tokenizer, tracked, docs, _ = tiny_setup(world)
    batches = list(make_batches(docs[:12], 4, tokenizer.pad_token_id))
    whole = fit_factors(model, tracked, batches, FactorArguments("ekfac", "empirical"), progress=False)
    files = {}
    for k in range(3):
        part = fit_factors(model, tracked, batches, FactorArguments("ekfac", "empirical"), False, Grid(k, 3, 3))
        assert part.local_modules == partition_modules(whole.shapes, "ekfac", 3)[k]
        part.save_tensors(str(tmp_path), f"shard{k}.safetensors")
        files[f"shard{k}.safetensors"] = part.local_modules
    whole.save_meta(str(tmp_path), files)
    wanted = [whole.modules[-1], whole.modules[0]]
    loaded = Factors.load(str(tmp_path), wanted)
    assert loaded.local_modules == wanted and set(loaded.tensors) == set(wanted) and loaded.modules == whole.modules
    for name in wanted:
        for key, tensor in whole.tensors[name].items():
            assert torch.equal(loaded.tensors[name][key], tensor)


def test_bfloat16_factors_rank_like_float32(world):
    model, tokenizer, tracked, docs, queries = tiny_setup(world)
    batches = list(make_batches(docs[:16], 4, tokenizer.pad_token_id))
    exact = fit_factors(model, tracked, batches, FactorArguments("ekfac", "empirical"), progress=False)
    stored = fit_factors(model, tracked, batches, FactorArguments("ekfac", "empirical", dtype="bfloat16"), False)
    grads, _ = query_gradients(model, tracked, queries, 4)
    scores = [scores_of(model, tracked, precondition(grads, f, QueryArguments(rank=None)), docs,
                        tokenizer.pad_token_id) for f in (exact, stored)]
    assert pearson_per_query(*scores).min() >= 0.999
    assert not torch.equal(scores[0], scores[1])                  # the 16-bit storage did change something


def test_query_batches_within_the_memory_budget_give_the_same_scores(world):
    model, tokenizer, tracked, docs, queries = tiny_setup(world)
    factors = fit_factors(model, tracked, make_batches(docs[:12], 4, tokenizer.pad_token_id),
                          FactorArguments("ekfac", "empirical"), progress=False)
    grads, _ = query_gradients(model, tracked, queries, 4)
    pq = precondition(grads, factors, QueryArguments(rank=4))
    per_query = pq.bytes_per_query()
    assert per_query == 4 * sum(4 * (d_out + d_in) for d_out, d_in in factors.shapes.values())
    expected = scores_of(model, tracked, pq, docs, tokenizer.pad_token_id)
    parts = within_budget(pq, 2 * per_query + 100)
    assert [p.n_queries for p in parts] == [2, 2, 1] and all(p.max_dense_cache_bytes < 2**20 for p in parts)
    batched = torch.cat([scores_of(model, tracked, p, docs, tokenizer.pad_token_id) for p in parts])
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-6 * expected.abs().max().item())
    with pytest.raises(Exception, match="below one query"):
        within_budget(pq, per_query - 1)


def test_module_shards_that_do_not_divide_the_ranks_are_one_line(world, tmp_path):
    from precompute.__main__ import main

    assert main(["fit", "--model", world["model"], "--corpus", world["corpus"], "--out", str(tmp_path / "run"),
                 "--module-shards", "2"]) == 2                   # one process: 2 shards cannot divide 1 rank
    assert not os.path.exists(tmp_path / "run" / "manifest.json")   # refused before anything was written
    with pytest.raises(UserInputError, match="--memory-budget"):
        Settings(memory_budget="lots").checked()


def run_sharded(rank: int, world_size: int, init_file: str, values: dict) -> None:
    """Child process: `run` under gloo with the factors split over all ranks."""
    import torch.distributed as dist

    from precompute.pipeline.commands import run_command

    torch.set_num_threads(1)                                      # forked: no OpenMP pool shared with the parent
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    run_command(Settings(**values).checked(), "test", progress=False)   # destroys the process group at the end


@pytest.mark.slow
def test_module_sharded_runs_on_two_three_and_four_gloo_ranks_equal_one_process(world, tmp_path):
    import torch.multiprocessing as mp

    from precompute.pipeline.commands import run_command

    def settings(out, **extra):
        return dict(model=world["model"], corpus=world["corpus"], queries=world["queries"], out=str(out),
                    **SHARD_SETTINGS, **extra)

    run_command(Settings(**settings(tmp_path / "single")).checked(), "test", progress=False)
    single = {name: np.load(tmp_path / "single" / name) for name in ("scores.npy", "doc_grad_norms.npy")}
    manifest = json.load(open(tmp_path / "single" / "manifest.json"))
    single_tokens = pd.read_parquet(tmp_path / "single" / "token_scores.parquet")
    for ranks, n in ((2, 2), (3, 3), (4, 2)):        # (4, 2): 2 data groups x 2 module shards
        out = tmp_path / f"shards{ranks}"
        mp.start_processes(run_sharded, args=(ranks, str(tmp_path / f"init{ranks}"), settings(out, module_shards=n)),
                           nprocs=ranks, join=True, start_method="fork")
        sharded = json.load(open(out / "manifest.json"))
        assert sharded["world_size"] == ranks and sharded["module_shards"] == n
        assert sharded["status"] == "complete" and sharded["damping_used"] == pytest.approx(manifest["damping_used"],
                                                                                             rel=1e-6)
        for name, expected in single.items():
            got = np.load(out / name)
            assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max(), name
        tokens = pd.read_parquet(out / "token_scores.parquet")            # rank 0 gathered every module's queries
        pd.testing.assert_frame_equal(tokens.drop(columns="score"), single_tokens.drop(columns="score"))
        np.testing.assert_allclose(tokens.score, single_tokens.score, rtol=1e-4,
                                   atol=1e-6 * single_tokens.score.abs().max())
        meta = json.load(open(out / "factors" / "meta.json"))
        sizes = {name: os.path.getsize(out / "factors" / name) for name in meta["files"]}
        assert len(sizes) == n and not os.path.exists(out / "factors" / "factors.safetensors")
        total = os.path.getsize(tmp_path / "single" / "factors" / "factors.safetensors")
        largest = max(factor_bytes("ekfac", *shape) for shape in meta["shapes"].values())
        assert max(sizes.values()) <= total / n + largest
        assert sorted(m for modules in meta["files"].values() for m in modules) == sorted(meta["modules"])


def test_factor_files_of_a_sharded_run(tmp_path):
    """meta.json's "files" decide which tensor files belong to the run: the fingerprint covers each of them, a
    missing one is reported, files of an earlier fit with another shard count are removed."""
    import hashlib

    from precompute.rundir.factor_files import (factor_tensor_files, factors_sha256, missing_factor_files,
                                                remove_unlisted_shards)

    names = ["factors-00000-of-00002.safetensors", "factors-00001-of-00002.safetensors"]
    for name, body in zip(names + ["factors.safetensors", "factors-00002-of-00003.safetensors"], "abcd"):
        (tmp_path / name).write_text(body)
    (tmp_path / "meta.json").write_text(json.dumps({"files": {names[0]: ["m0"], names[1]: ["m1"]}}))
    assert factor_tensor_files(str(tmp_path)) == names
    lines = "".join(f"{name} {hashlib.sha256(body.encode()).hexdigest()}\n" for name, body in zip(names, "ab"))
    assert factors_sha256(str(tmp_path)) == hashlib.sha256(lines.encode()).hexdigest()
    remove_unlisted_shards(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names + ["meta.json"])
    (tmp_path / names[1]).unlink()
    assert missing_factor_files(str(tmp_path)) == [f"factors/{names[1]}"]
    (tmp_path / "meta.json").write_text(json.dumps({"modules": ["m0"]}))      # a run from before shards
    assert factor_tensor_files(str(tmp_path)) == ["factors.safetensors"]
    assert missing_factor_files(str(tmp_path)) == ["factors/factors.safetensors"]
