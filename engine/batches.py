"""Tokenise documents and prompt-masked queries; pad them into batches."""
from dataclasses import dataclass
from typing import Iterator

import torch

from engine.errors import EngineInputError

IGNORE = -100


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]  # labels[i] = target of position i = input_ids[i+1] (or -100: no target)
    truncated: bool


@dataclass
class Batch:
    input_ids: torch.Tensor  # LongTensor [B, T], right-padded with pad_id
    attention_mask: torch.Tensor  # LongTensor [B, T], 1 = real token
    labels: torch.Tensor  # LongTensor [B, T], -100 where there is no target
    index: list[int]  # position of each row in the list given to make_batches

    def to(self, device) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.index)

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


def check_max_length(max_length: int) -> None:
    if max_length < 2:
        raise EngineInputError(f"max_length must be at least 2, got {max_length}")


def tokenize_documents(tokenizer, texts: list[str], max_length: int) -> list[Tokenized]:
    """Every next token is a target (document loss = summed next-token NLL)."""
    check_max_length(max_length)
    out = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        truncated = len(ids) > max_length
        ids = ids[:max_length]
        if not ids:
            ids = [first_token(tokenizer)]
        out.append(Tokenized(ids, ids[1:] + [IGNORE], truncated))
    return out


def first_token(tokenizer) -> int:
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if token_id is not None:
            return int(token_id)
    raise EngineInputError("tokenizer has no bos, eos or pad token to start an empty text with")


def completion_token_spans(tokenizer, completion: str, ids: list[int]) -> list[tuple[int, int]]:
    """Character span of each of the completion's tokens `ids` (a fast tokenizer's offsets; else by decoding
    prefixes, the span a token adds to the decoded text)."""
    if getattr(tokenizer, "is_fast", False):
        mapping = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [(int(start), int(stop)) for start, stop in mapping]
    lengths = [0] + [len(tokenizer.decode(ids[:n + 1])) for n in range(len(ids))]
    return list(zip(lengths[:-1], lengths[1:]))


def measured(labels: list[int], token_spans: list[tuple[int, int]], span: tuple[int, int] | None) -> list[int]:
    """The completion's labels with only the tokens overlapping the character `span` kept (None: all)."""
    if span is None:
        return labels
    kept = [label if start < span[1] and stop > span[0] else IGNORE
            for label, (start, stop) in zip(labels, token_spans)]
    if all(label == IGNORE for label in kept):
        raise EngineInputError(f"no completion token covers characters {span[0]}–{span[1]}", field="answer")
    return kept


def tokenize_queries(tokenizer, prompts: list[str], completions: list[str], max_length: int,
                     spans: list[tuple[int, int] | None] | None = None) -> list[Tokenized]:
    """Targets only on completion tokens — with `spans`, only on those overlapping each completion's character
    span (engine.task.Task.measured_span); the completion is kept whole, the prompt is cut from the left."""
    check_max_length(max_length)
    if len(prompts) != len(completions):
        raise EngineInputError(f"{len(prompts)} prompts but {len(completions)} completions")
    spans = [None] * len(completions) if spans is None else spans
    out = []
    for number, (prompt, completion) in enumerate(zip(prompts, completions)):
        completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
        if not completion_ids:
            raise EngineInputError(f"query {number} has an empty completion", field="completion")
        if len(completion_ids) > max_length - 1:
            raise EngineInputError(f"query {number}: completion has {len(completion_ids)} tokens, more than "
                                   f"max_length - 1 = {max_length - 1}", field="completion")
        prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"]) or [first_token(tokenizer)]
        keep = max_length - len(completion_ids)
        truncated = len(prompt_ids) > keep
        prompt_ids = prompt_ids[-keep:]
        ids = prompt_ids + completion_ids
        p = len(prompt_ids)
        try:
            targets = completion_ids if spans[number] is None else measured(
                completion_ids, completion_token_spans(tokenizer, completion, completion_ids), spans[number])
        except EngineInputError as error:
            raise EngineInputError(f"query {number}: {error}", field=error.field) from None
        labels = [IGNORE] * (p - 1) + targets + [IGNORE]  # position p-1 predicts the first completion token
        out.append(Tokenized(ids, labels, truncated))
    return out


def make_batches(items: list[Tokenized], batch_size: int, pad_id: int) -> Iterator[Batch]:
    if batch_size < 1:
        raise EngineInputError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        width = max(len(item.input_ids) for item in chunk)
        input_ids = torch.full((len(chunk), width), int(pad_id), dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, item in enumerate(chunk):
            n = len(item.input_ids)
            input_ids[row, :n] = torch.tensor(item.input_ids)
            labels[row, :n] = torch.tensor(item.labels)
            mask[row, :n] = 1
        yield Batch(input_ids, mask, labels, list(range(start, start + len(chunk))))
