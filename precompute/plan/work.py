"""The memory and work plan of a run: predicted bytes per rank at every stage, disk, work, and the settings chosen.

`make_plan(shape, workload, memory_per_rank)` tries the requested batch size, then halves it, and with several
ranks also deals the factors over 1, 2, ... module shards (divisors of the number of ranks), and keeps the first
setting whose peak fits; when none fits the plan says why (`reason`). The peak of a stage is the sum of what is
alive then (precompute.plan.memory); `peak_bytes_per_rank` is the highest stage on the device that bounds the run
(the process's resident memory on a CPU, GPU memory on CUDA) and `peak_host_bytes_per_rank` the host side.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from precompute.plan import memory as pm
from precompute.plan.model_shape import ModelShape
from precompute.rundir import layout

FLOPS_PER_TOKEN_PARAMETER = 4   # plain forward (2) + backward to the inputs only (2): parameters are frozen
ASSUMPTIONS = [
    f"Python runtime {pm.RUNTIME_BYTES // pm.MiB} MiB (measured on CPU with a model loaded); CUDA context "
    f"{pm.CUDA_CONTEXT_BYTES // pm.MiB} MiB per GPU (assumed)",
    "activations per layer and token: 9·hidden + 2·kv width + 4·MLP width in the model dtype (a Llama-style "
    f"block, sdpa attention keeps no T×T weights) plus {pm.LOGIT_COPIES} float32 copies of the logits",
    f"corpus in memory: its UTF-8 text plus {pm.DOCUMENT_OVERHEAD_BYTES} bytes of Python objects per document",
    f"a forward+backward costs {FLOPS_PER_TOKEN_PARAMETER} FLOPs per parameter and token; scoring adds its "
    "contractions' FLOPs and query preconditioning its rotations' at the same FLOP rate (measured on the demo "
    "model: scoring 1.13x a forward+backward)",
    "score files are memory-mapped on rank 0: listed, not counted in the peak (the kernel writes them back and "
    "evicts them); the analysis holds 4 copies of the [queries × documents] scores",
]


@dataclass
class Plan:
    model: str
    summary: str
    workload: dict
    settings: dict
    stages: dict[str, dict[str, dict[str, int]]]    # stage -> {"device"/"host" -> {part: bytes}}
    peak_bytes_per_rank: int
    peak_host_bytes_per_rank: int
    peak_stage: str
    disk: dict[str, int]
    work: dict
    fits: bool
    memory_per_rank: int | None = None
    reason: str | None = None
    assumptions: list[str] = field(default_factory=lambda: list(ASSUMPTIONS))

    def to_json(self) -> dict:
        return asdict(self)


def stage_parts(shape: ModelShape, w: pm.Workload, batch: int, shards: int) -> dict:
    """stage -> [(part, bytes, 'device' | 'host')] of one rank: what is alive at each stage's high point."""
    factors, modules = pm.factor_bytes_per_rank(shape, w.strategy, w.factor_dtype, shards)
    on = "device" if w.device == "cuda" else "host"
    weights = shape.n_parameters * pm.element_bytes(w.dtype)
    base = [("runtime", pm.RUNTIME_BYTES, "host"), ("corpus texts", pm.corpus_bytes(w), "host"),
            ("weights", weights, on)] + ([("CUDA context", pm.CUDA_CONTEXT_BYTES, "device")] if on == "device" else [])
    fit_acts = [("activations (fit batch)", pm.activation_bytes(shape, w, batch, w.batch_tokens), on)]
    fit = pm.fit_bytes(shape, modules, w, batch)
    queries = pm.query_bytes(shape, modules, w, batch)
    choice = pm.contraction_choice(shape, modules, w, batch)
    buffers = pm.scoring_buffers(shape, w, batch, choice)
    low = [n for n, how in choice.items() if how == "low-rank"]
    stored = ("preconditioned queries", queries["stored"], "host")
    _, passes, _ = pm.scoring_query_batches(shape, modules, w)
    gathered = pm.query_storage_bytes(shape, list(shape.modules), w.n_queries, w.query_rank)
    score_files = w.n_queries * w.n_docs * (len(shape.modules) + 2) * pm.FLOAT32 + w.n_docs * 12
    stages = {
        "load": base + ([("weights while loading (host copy)", weights, "host")] if on == "device" else []),
        "fit: covariances": base + fit_acts + [("covariance sums", fit["covariances"], on),
                                               ("eigendecomposition (float64, one module)", fit["eigen_transient"],
                                                "host"), ("eigenvectors", fit["eigen"], "host")],
        "fit: eigenvalue correction": base + fit_acts + [
            ("eigenvectors", fit["eigen"], "host")] + ([("eigenvectors on the device", fit["eigen"], on)]
                                                       if on == "device" else []) + [
            ("Λ sums", fit["lambda"], on),
            ("per-document rotated gradients (one module)", fit["lambda_transient"], on)],
        "fit: save": base + [("factors", factors, "host"), ("factors serialised", factors, "host")],
        "query gradients": base + [
            ("factors", factors, "host"), ("preconditioned queries (earlier batches)", queries["stored"], "host"),
            ("query gradients (one query batch) and their torch.cat", 2 * queries["gradients"], "host")],
        "query preconditioning": base + [
            ("factors", factors, "host"), ("query gradients (one query batch)", queries["gradients"], "host"),
            ("preconditioning intermediates (one module)", queries["transient"], "host"),
            ("preconditioned queries (+ copy while concatenated)", 2 * queries["stored"], "host")],
        "scoring": base + [
            ("factors", factors, "host"), stored,
            ("query batches of --memory-budget (copies)", queries["stored"] if passes > 1 else 0, "host"),
            ("low-rank query cache", pm.query_storage_bytes(shape, low, w.n_queries, w.query_rank), on),
            ("dense query cache (materialised modules)", buffers["dense_cache"], on),
            ("activations (scoring batch)", pm.activation_bytes(shape, w, batch, w.batch_tokens), on),
            ("pending document gradients", buffers["pending"], on),
            ("low-rank projections and Grams", buffers["projections"], on)],
        "writing results (rank 0)": base + [
            ("factors", factors, "host"), ("preconditioned queries (every module's, gathered)", gathered, "host"),
            ("score files (memory-mapped, evictable)", score_files, "mapped"),
            ("documents.parquet (texts copied to Arrow)", 2 * w.text_bytes, "host"),
            ("analysis (4 copies of the scores)", 4 * w.n_queries * w.n_docs * pm.FLOAT32, "host")],
    }
    return stages, choice, factors, modules, passes


def summarise(stages: dict, device: str) -> tuple[dict, int, int, str]:
    """(stage -> where -> part -> bytes, peak of the bounding memory, host peak, the stage at the peak)."""
    table = {stage: {"device": {}, "host": {}, "mapped": {}} for stage in stages}
    for stage, parts in stages.items():
        for part, value, where in parts:
            if value:
                table[stage][where][part] = table[stage][where].get(part, 0) + int(value)
    bound = "device" if device == "cuda" else "host"
    totals = {stage: sum(table[stage][bound].values()) for stage in table}
    peak_stage = max(totals, key=totals.get)
    host = max(sum(table[stage]["host"].values()) for stage in table)
    return table, totals[peak_stage], host, peak_stage


def disk_bytes(shape: ModelShape, w: pm.Workload) -> dict[str, int]:
    """Files of the run directory (precompute/rundir/layout): float32 scores, their normalisation and the
    per-layer scores, chunks while scoring, token scores (~24 bytes per row, assumed), the factors."""
    n_layers = len(shape.modules)
    scores = w.n_queries * w.n_docs * pm.FLOAT32
    token_rows = w.n_queries * 2 * min(w.token_topk, w.n_docs) * w.tokens_per_doc
    factors = sum(pm.module_factor_bytes(w.strategy, *d, w.factor_dtype) for d in shape.modules.values())
    index = w.n_docs * sum(4 * (o + i) for o, i in shape.modules.values()) * 2
    return {f"{layout.SCORES} + {layout.NORMALIZED_SCORES}": 2 * scores, layout.LAYER_SCORES: scores * n_layers,
            "score chunks (while scoring)": scores * (n_layers + 1) + w.n_docs * 12,
            layout.TOKEN_SCORES: int(token_rows * 24), f"{layout.DOCUMENTS} (at most)": w.text_bytes + w.n_docs * 64,
            "factors": factors, "index (with --index: rank 4, float16)": index}


def work_units(shape: ModelShape, w: pm.Workload, tokens_per_second: float | None, contraction_flops: float,
               shards: int, passes: int = 1) -> dict:
    """Work in units of one plain forward+backward over the corpus (all ranks together); the parts beyond it are
    counted in FLOPs (`contraction_flops`: scoring's contractions per document token). With module shards every
    rank of a data group runs the forward+backward of the group's documents, so those passes count `shards` times;
    --memory-budget's query batches (`passes`) each cost one more forward+backward over the documents."""
    corpus_tokens = w.n_docs * w.tokens_per_doc
    unit_flops = FLOPS_PER_TOKEN_PARAMETER * shape.n_parameters * max(corpus_tokens, 1)
    factor_passes = {"ekfac": 2, "kfac": 1, "diagonal": 1, "identity": 0}[w.strategy]
    precondition_flops = 0 if w.strategy in ("identity", "diagonal") else sum(
        4 * o * i * (o + i) + 2 * o * i * min(o, i) + 10 * min(o, i) ** 3 for o, i in shape.modules.values())
    parts = {"fit (factor passes)": shards * factor_passes * w.factor_docs / max(w.n_docs, 1),
             "query gradients + preconditioning": (w.n_queries * w.query_tokens * FLOPS_PER_TOKEN_PARAMETER
                                                   * shape.n_parameters + w.n_queries * precondition_flops)
             / unit_flops,
             "scoring": shards * passes + contraction_flops * corpus_tokens / unit_flops,
             "token scores (top and bottom documents, one at a time)":
                 min(w.n_docs, 2 * w.token_topk * w.n_queries) / max(w.n_docs, 1)}
    if w.n_queries == 0:                               # the fit command: no queries, no scoring
        parts = {name: value for name, value in parts.items() if name.startswith("fit")}
    total = sum(parts.values())
    work = {"units": parts, "total_units": total, "corpus_tokens": int(corpus_tokens),
            "flops_per_unit": unit_flops}
    if tokens_per_second:
        work["seconds"] = total * corpus_tokens / (tokens_per_second * w.nproc)
        work["gpu_hours"] = work["seconds"] * w.nproc / 3600
    return work


def evaluate(shape: ModelShape, w: pm.Workload, batch: int, shards: int, only: tuple[str, ...] | None) -> dict:
    w = pm.Workload(**{**w.__dict__, "module_shards": shards})
    stages, choice, factors, modules, passes = stage_parts(shape, w, batch, shards)
    stages = {name: parts for name, parts in stages.items() if only is None or name.split(":")[0] in only}
    table, peak, host, peak_stage = summarise(stages, w.device)
    return {"batch": batch, "shards": shards, "stages": table, "peak": peak, "host": host, "peak_stage": peak_stage,
            "choice": choice, "factors": factors, "modules": modules, "passes": passes,
            "contraction_flops": pm.contraction_flops_per_token(shape, w, batch, choice) * shards}


def candidates(w: pm.Workload) -> list[tuple[int, int]]:
    """(module shards, batch size) in the order tried: no sharding first, the largest batch first."""
    shards = [k for k in range(1, w.nproc + 1) if w.nproc % k == 0]
    batches = sorted({max(1, w.batch_size >> i) for i in range(int(math.log2(max(w.batch_size, 1))) + 1)},
                     reverse=True)
    return [(k, b) for k in shards for b in batches]


def make_plan(shape: ModelShape, w: pm.Workload, memory_per_rank: int | None = None,
              host_memory_per_rank: int | None = None, tokens_per_second: float | None = None,
              only: tuple[str, ...] | None = None) -> Plan:
    """The first candidate setting that fits (or the requested one without a limit); `only` keeps the stages
    whose name starts with one of these (e.g. ("load", "fit") for the fit command)."""
    tried = []
    chosen = None
    limited = memory_per_rank or host_memory_per_rank
    for shards, batch in candidates(w) if limited else [(w.module_shards, w.batch_size)]:
        if shards > len(shape.modules):
            continue
        result = evaluate(shape, w, batch, shards, only)
        tried.append(result)
        if (memory_per_rank is None or result["peak"] <= memory_per_rank) and \
                (host_memory_per_rank is None or result["host"] <= host_memory_per_rank):
            chosen = result
            break
    fits = chosen is not None
    result = chosen or min(tried, key=lambda r: r["peak"])
    reason = None if fits else refusal(result, memory_per_rank, host_memory_per_rank, w)
    settings = {"batch_size": result["batch"], "query_batch": result["batch"], "module_shards": result["shards"],
                "scoring_passes": result["passes"],
                "modules_per_rank": len(result["modules"]),
                "contraction": {how: sum(1 for v in result["choice"].values() if v == how)
                                for how in ("low-rank", "materialised")},
                "contraction_per_module": result["choice"],
                "dense_cache_limit_bytes": pm.scoring_query_batches(shape, result["modules"], w)[2]}
    return Plan(shape.source, shape.summary(), asdict(w), settings, result["stages"], result["peak"],
                result["host"], result["peak_stage"], disk_bytes(shape, w),
                work_units(shape, w, tokens_per_second, result["contraction_flops"], result["shards"],
                           result["passes"]),
                fits, memory_per_rank, reason)


def refusal(result: dict, memory: int | None, host_memory: int | None, w: pm.Workload) -> str:
    where = "device" if w.device == "cuda" else "host"
    over_host = memory is None or result["peak"] <= memory
    limit, peak = (host_memory, result["host"]) if over_host else (memory, result["peak"])
    stage = result["peak_stage"]
    if over_host:
        stage = max(result["stages"], key=lambda s: sum(result["stages"][s]["host"].values()))
        where = "host"
    parts = result["stages"][stage][where]
    largest = max(parts, key=parts.get)
    return (f"nothing fits in {format_bytes(limit)} per rank: at batch size {result['batch']} with "
            f"{result['shards']} module shard(s) the {stage} stage needs {format_bytes(peak)}, most of it "
            f"{largest} ({format_bytes(parts[largest])})")


def format_bytes(value: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:,.2f} {unit}"
    return f"{int(value)} B"
