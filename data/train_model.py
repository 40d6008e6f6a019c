"""Train the demo model from scratch on the demo corpus: `python -m data.train_model`.

Steps: check the corpus against data/manifest.json, train a ByteLevel BPE tokenizer, train a small Llama causal
LM (documents one per sequence, truncated to 256 tokens, eos appended, length-bucketed batches), save tokenizer
and model with save_pretrained into data/model/, record settings and wall time in the manifest, then build the
query set with the model's greedy completions (data/make_queries.py), which records per-task accuracy.
Seeded; runs on CPU (one thread by default: on a shared 2-core machine two threads ran ~10x slower than
one, measured)  or on a GPU when one is available.
"""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from data.manifest import read_manifest, update_manifest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus.jsonl")
MODEL_DIR = os.path.join(HERE, "model")
EOS, PAD = "<|endoftext|>", "<|pad|>"

SETTINGS = dict(vocab_size=1536, hidden_size=128, num_hidden_layers=4, intermediate_size=384,
                num_attention_heads=4, max_length=256, epochs=10, batch_size=32, lr=3e-3, min_lr_ratio=0.1,
                warmup_steps=100, weight_decay=0.1, grad_clip=1.0, seed=0, threads=1)


def load_corpus(path, check_hash=True):
    with open(path, "rb") as f:
        raw = f.read()
    sha = hashlib.sha256(raw).hexdigest()
    expected = read_manifest().get("corpus", {}).get("sha256")
    if check_hash and expected and sha != expected:
        raise SystemExit(f"corpus sha256 {sha} != manifest {expected}; run `python -m data.generate_corpus` first")
    return [json.loads(line)["text"] for line in raw.decode("utf-8").splitlines()], sha


def train_tokenizer(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS,
                                   model_max_length=SETTINGS["max_length"])


def make_batches(seqs, batch_size, rng):
    """Length-bucketed batches: shuffle, sort within chunks of 50 batches, then shuffle the batches."""
    order = list(range(len(seqs)))
    rng.shuffle(order)
    batches = []
    chunk = batch_size * 50
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: len(seqs[i]))
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(seqs, idx, pad_id):
    width = max(len(seqs[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
        mask[r, :len(seqs[i])] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def save_atomically(model, tokenizer, out_dir):
    """Write into a sibling temp dir, then swap it in (old dir removed only after the new one is complete)."""
    tmp, old = out_dir + ".tmp", out_dir + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if os.path.exists(out_dir):
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def build_model(tokenizer, s: dict, device: str) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=s["hidden_size"],
                         num_hidden_layers=s["num_hidden_layers"], intermediate_size=s["intermediate_size"],
                         num_attention_heads=s["num_attention_heads"], num_key_value_heads=s["num_attention_heads"],
                         max_position_embeddings=s["max_length"], tie_word_embeddings=True,
                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).to(device)


def train(model, seqs: list, s: dict, rng: random.Random, device: str, deadline: float):
    """AdamW with linear warmup and cosine decay; returns (steps, stopped early, seconds, final loss EMA)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s["lr"], betas=(0.9, 0.95))
    total = math.ceil(len(seqs) / s["batch_size"]) * s["epochs"]

    def lr_at(step):  # linear warmup, cosine decay to min_lr_ratio * lr
        if step < s["warmup_steps"]:
            return s["lr"] * (step + 1) / s["warmup_steps"]
        frac = (step - s["warmup_steps"]) / max(1, total - s["warmup_steps"])
        return s["lr"] * (s["min_lr_ratio"] + (1 - s["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    step, t_train, seen, ema = 0, time.time(), 0, None
    for epoch in range(s["epochs"]):
        for idx in make_batches(seqs, s["batch_size"], rng):
            ids, mask, labels = (x.to(device) for x in collate(seqs, idx, model.config.pad_token_id))
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, seen = step + 1, seen + int(mask.sum())
            ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
            if step % 50 == 0 or step == total:
                el = time.time() - t_train
                print(f"epoch {epoch} step {step}/{total} loss {ema:.3f} lr {lr_at(step):.2e} "
                      f"{seen / el:.0f} tok/s elapsed {el / 60:.1f} min", flush=True)
            if time.time() > deadline:
                print(f"stopped early at step {step}: the --max-minutes deadline was reached", flush=True)
                return step, True, time.time() - t_train, ema
    return step, False, time.time() - t_train, ema


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    ap.add_argument("--max-minutes", type=float, default=30.0, help="safety stop (recorded if it triggers)")
    ap.add_argument("--out", default=MODEL_DIR)
    ap.add_argument("--threads", type=int, default=SETTINGS["threads"])
    ap.add_argument("--skip-queries", action="store_true")
    args = ap.parse_args(argv)
    s = dict(SETTINGS, epochs=args.epochs, threads=args.threads)
    torch.set_num_threads(s["threads"])
    torch.manual_seed(s["seed"])
    rng = random.Random(s["seed"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()

    texts, sha = load_corpus(CORPUS)
    tokenizer = train_tokenizer(texts, s["vocab_size"])
    seqs = [tokenizer(t)["input_ids"][:s["max_length"] - 1] + [tokenizer.eos_token_id] for t in texts]
    n_tokens = sum(len(x) for x in seqs)
    n_truncated = sum(len(tokenizer(t)["input_ids"]) >= s["max_length"] for t in texts)
    print(f"tokenizer: vocab {len(tokenizer)}; corpus {len(seqs)} docs, {n_tokens} tokens, "
          f"{n_truncated} truncated; {time.time() - t0:.1f}s", flush=True)

    model = build_model(tokenizer, s, device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters; settings {s}; device {device}", flush=True)
    step, stopped_early, train_s, ema = train(model, seqs, s, rng, device, deadline=t0 + args.max_minutes * 60)

    model.eval()
    save_atomically(model.cpu(), tokenizer, args.out)
    wall = time.time() - t0
    print(f"saved {args.out}; training {train_s / 60:.1f} min, total {wall / 60:.1f} min", flush=True)
    update_manifest("model", {
        "path": "data/model", "architecture": "LlamaForCausalLM", "n_parameters": n_params,
        "tokenizer": "ByteLevel BPE (tokenizers)", "vocab_size": len(tokenizer), "settings": s,
        "corpus_sha256": sha, "corpus_tokens": n_tokens, "truncated_documents": n_truncated,
        "steps": step, "stopped_early": stopped_early, "final_loss_ema": round(ema, 4),
        "train_seconds": round(train_s, 1), "wall_seconds": round(wall, 1), "device": device,
        "torch": torch.__version__, "command": "python -m data.train_model"})
    if not args.skip_queries and os.path.abspath(args.out) == MODEL_DIR:  # queries describe the committed model
        from data import make_queries
        make_queries.main([])


if __name__ == "__main__":
    main()
