"""The shapes a memory plan needs, from a model's config alone: no weights are read or allocated.

`--model` is an HF model directory (its config.json), a config.json file, a .gguf file or the 'smollm2' alias.
The model is built on torch's meta device (shapes without storage), and the tracked modules are found by the
engine's own rule (engine.model.find_tracked_modules with --modules mlp|all|REGEX), so a 7B config plans on a
laptop in seconds and the modules are exactly those a run would track.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from precompute.rundir.errors import UserInputError


@dataclass
class ModelShape:
    source: str
    model_type: str
    n_parameters: int                     # every parameter once (tied embeddings once)
    vocab_size: int
    hidden_size: int
    intermediate_size: int                # the MLP width (hidden_size × 4 when the config does not say)
    n_layers: int
    n_heads: int
    n_kv_heads: int
    modules: dict[str, tuple[int, int]]   # tracked module -> (d_out, d_in + 1 if bias), engine.model.module_shape

    @property
    def tracked_parameters(self) -> int:
        return sum(d_out * d_in for d_out, d_in in self.modules.values())

    def summary(self) -> str:
        return (f"{self.model_type}: {self.n_parameters / 1e6:,.1f} M parameters, {self.n_layers} layers, hidden "
                f"{self.hidden_size}, MLP {self.intermediate_size}, vocab {self.vocab_size}; {len(self.modules)} "
                f"tracked modules ({self.tracked_parameters / 1e6:,.1f} M weights)")


def read_config(spec: str):
    """The transformers config of an HF directory, a config .json file, a .gguf file or 'smollm2'."""
    from transformers import AutoConfig

    from engine.model import SMOLLM2_ALIAS, smollm2_gguf_path

    try:
        if spec == SMOLLM2_ALIAS:
            spec = smollm2_gguf_path()
        if not os.path.exists(spec):
            raise UserInputError(f"{spec}: model config not found (expected an HF model directory, a config "
                                 f".json, a .gguf file or 'smollm2')")
        if os.path.isdir(spec):
            return AutoConfig.from_pretrained(spec)
        if spec.endswith(".gguf"):
            return AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(spec)),
                                              gguf_file=os.path.basename(spec))
        with open(spec, encoding="utf-8") as handle:
            values = json.load(handle)
        if not isinstance(values, dict) or "model_type" not in values:
            raise UserInputError(f"{spec}: not a model config (a JSON object with 'model_type')")
        return AutoConfig.for_model(values.pop("model_type"), **values)
    except UserInputError:
        raise
    except Exception as error:  # transformers and json raise many types; the user needs one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"{spec}: cannot read the model config ({first})") from None


def model_shape(spec: str, modules: str = "mlp") -> ModelShape:
    """Build the model of `spec`'s config on the meta device and measure what the plan needs."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.errors import EngineInputError
    from engine.model import find_tracked_modules, module_shape

    config = read_config(spec)
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        tracked = find_tracked_modules(model, modules)
    except EngineInputError as error:
        raise UserInputError(f"{spec}: {error}") from None
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"{spec}: cannot build a causal LM from the config ({first})") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(getattr(text, "num_attention_heads", 1) or 1)
    return ModelShape(
        source=spec, model_type=str(config.model_type),
        n_parameters=sum(p.numel() for p in model.parameters()),
        vocab_size=int(text.vocab_size), hidden_size=hidden,
        intermediate_size=int(getattr(text, "intermediate_size", None) or 4 * hidden),
        n_layers=int(text.num_hidden_layers), n_heads=heads,
        n_kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
        modules={name: tuple(module_shape(module)) for name, module in tracked.items()})
