"""Tiny random causal LMs saved as Hugging Face directories, built in tests (no downloads).

make_tiny_llama / make_tiny_gpt2 write config + safetensors weights + a byte-level BPE tokenizer with
save_pretrained, so they load through the same path as any user's model directory.
"""
from __future__ import annotations

import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TRAINING_TEXT = [
    "The capital of Veloria is Marn. Solve 3 x + 4 = 10, so x = 2.",
    "def slope(x1, y1, x2, y2): return (y2 - y1) / (x2 - x1)",
    "(7 - 4) * 7 = 3 * 7 = 21. First 7 - 4 = 3, then 3 * 7 = 21.",
    "Question: what is the slope between (1, 2) and (3, 6)? Answer: 2.",
    "function add(a, b) { return a + b; } // JavaScript",
    "Le chat dort. Der Hund bellt. El perro come.",
]


def make_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few lines; every string is encodable."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def make_tiny_llama(path: str, hidden: int = 32, layers: int = 2, intermediate: int = 64, heads: int = 4,
                    seed: int = 0, dtype: torch.dtype = torch.float32) -> str:
    """Save a random tiny LlamaForCausalLM (+ tokenizer) at `path`; returns path."""
    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(dtype)
    _save(model, tokenizer, path)
    return path


def make_tiny_gpt2(path: str, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0) -> str:
    """Save a random tiny GPT2LMHeadModel (Conv1D layers with bias) + tokenizer at `path`; returns path."""
    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=heads, n_positions=256,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    _save(model, tokenizer, path)
    return path


def _save(model, tokenizer, path: str) -> None:
    os.makedirs(path, exist_ok=True)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
