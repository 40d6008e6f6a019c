"""Greedy completions for queries given without one: the model's own answer becomes the influence target.

Prompts are tokenized exactly as engine.batches.tokenize_queries tokenizes them (special tokens added), left-padded
into batches, and continued greedily until the answer ends: eos, or with `stop_at_blank_line` the first blank line
after some text (a base model's next paragraph, as the demo's completions were made), or `max_new_tokens` (the
cap). `greedy_answers` says which of the three ended each completion. With `chat=True` the prompt is first wrapped
in the tokenizer's chat template (one user turn plus the assistant header) and the wrapped text is what the query's
`prompt` must then be, so that scoring conditions on what generation saw (see `chat_prompt`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from engine.errors import EngineInputError


def chat_prompt(tokenizer, prompt: str) -> str:
    """`prompt` as the user turn of the tokenizer's chat template, ending where the assistant's answer starts."""
    if not getattr(tokenizer, "chat_template", None):
        raise EngineInputError("the tokenizer has no chat template; generate from the plain prompts instead")
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def left_padded(tokenizer, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask [B, T] with the prompts right-aligned (generation appends on the right)."""
    encoded = [list(tokenizer(prompt, add_special_tokens=True)["input_ids"]) for prompt in prompts]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), int(tokenizer.pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        if ids:
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
    return input_ids.to(device), mask.to(device)


ENDED = ("eos", "blank line", "cap")


@dataclass(frozen=True)
class Answer:
    text: str
    ended: str                 # one of ENDED: what ended the completion


def blank_line_at(text: str) -> int:
    """Where the first blank line after some text starts in `text` (-1 if none): the end of a base model's answer."""
    start = len(text) - len(text.lstrip())
    return text.find("\n\n", start)


class BlankLineStop(StoppingCriteria):
    """Stops each sequence once its generated text holds a blank line after some text."""

    def __init__(self, tokenizer, prompt_width: int):
        self.tokenizer, self.prompt_width = tokenizer, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width:], skip_special_tokens=True)
        return torch.tensor([blank_line_at(text) >= 0 for text in texts], device=input_ids.device)


def new_answer(tokenizer, generated: torch.Tensor, eos_id: int | None, stop_at_blank_line: bool) -> Answer:
    """Decoded tokens up to (not including) the first eos, or the first blank line; special tokens dropped,
    trailing space trimmed; and what ended them (neither eos nor a blank line: the cap, as generation stops a
    sequence only at those three)."""
    ids, ended = generated.tolist(), "cap"
    if eos_id is not None and eos_id in ids:
        ids, ended = ids[:ids.index(eos_id)], "eos"
    text = tokenizer.decode(ids, skip_special_tokens=True)
    blank = blank_line_at(text) if stop_at_blank_line else -1
    if blank >= 0:
        text, ended = text[:blank], "blank line"
    return Answer(text.rstrip(), ended)


def new_text(tokenizer, generated: torch.Tensor, eos_id: int | None) -> str:
    """Decoded tokens up to (not including) the first eos; special tokens dropped, trailing space trimmed."""
    return new_answer(tokenizer, generated, eos_id, stop_at_blank_line=False).text


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 128, batch_size: int = 8,
                   progress: bool = True, stop_at_blank_line: bool = False) -> list[Answer]:
    """One greedy completion per prompt (temperature 0: the model's most likely continuation) and what ended it."""
    if max_new_tokens < 1 or batch_size < 1:
        raise EngineInputError(f"max_new_tokens and batch_size must be positive, got {max_new_tokens}, {batch_size}")
    if any(not prompt.strip() for prompt in prompts):
        raise EngineInputError(f"prompt {next(i for i, p in enumerate(prompts) if not p.strip())} is empty")
    device = next(model.parameters()).device
    eos_id = tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))   # similar lengths: less padding
    answers: list[Answer | None] = [None] * len(prompts)
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        input_ids, mask = left_padded(tokenizer, [prompts[i] for i in batch], device)
        stops = StoppingCriteriaList([BlankLineStop(tokenizer, input_ids.shape[1])] if stop_at_blank_line else [])
        output = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False, num_beams=1,
                                max_new_tokens=max_new_tokens, eos_token_id=eos_id, stopping_criteria=stops,
                                pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        for row, index in enumerate(batch):
            answers[index] = new_answer(tokenizer, output[row, input_ids.shape[1]:], eos_id, stop_at_blank_line)
    empty = [i for i, answer in enumerate(answers) if not answer.text.strip()]
    if empty:
        raise EngineInputError(f"the model's greedy completion of prompt {empty[0]} is empty "
                               f"({len(empty)} empty in all); give that query a completion")
    return answers


def greedy_completions(model, tokenizer, prompts: list[str], max_new_tokens: int = 128, batch_size: int = 8,
                       progress: bool = True) -> list[str]:
    """The texts of `greedy_answers` (until eos or the cap)."""
    return [answer.text for answer in greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size,
                                                     progress)]
