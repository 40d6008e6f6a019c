"""engine.task, the measurement seam: the answer measurement's query gradient is the gradient of
−log p(answer tokens | prompt, reasoning) computed independently (autograd on the weights of the tiny model, the
answer's token positions found by decoding), and the default task leaves every completion token measured."""
import pytest
import torch

from engine.batches import IGNORE, completion_token_spans, tokenize_queries
from engine.errors import EngineInputError
from engine.model import find_tracked_modules, load_model
from engine.precondition import query_gradients
from engine.task import DEFAULT_TASK, TASKS, AnswerTokens
from tests.tiny_models import make_tiny_llama

PROMPT, COMPLETION, ANSWER = "Q: What is (7 - 4) * 7?\nA:", " First 7 - 4 = 3, then 3 * 7 = 21. The answer is 21.", "21"


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    model, tokenizer = load_model(make_tiny_llama(str(tmp_path_factory.mktemp("llama"))), dtype="float32")
    return model.double(), tokenizer


def answer_positions(tokenizer, prompt: str, completion: str, answer: str) -> list[int]:
    """Positions (in prompt + completion ids) of the completion tokens inside the answer's last occurrence,
    found by decoding the completion token by token (independent of the offsets the engine uses)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    start = completion.rfind(answer)
    stop = start + len(answer)
    positions, seen = [], 0
    for index in range(len(completion_ids)):
        end = len(tokenizer.decode(completion_ids[:index + 1]))
        if seen < stop and end > start:
            positions.append(len(prompt_ids) + index)
        seen = end
    return positions


def test_the_default_task_measures_every_completion_token(llama):
    _, tokenizer = llama
    span = DEFAULT_TASK.measured_span(COMPLETION, ANSWER)
    plain, = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 128)
    spanned, = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 128, [span])
    assert span is None and plain == spanned


def test_answer_tokens_are_the_answers_last_occurrence(llama):
    _, tokenizer = llama
    query, = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 128, [AnswerTokens().measured_span(COMPLETION, ANSWER)])
    measured = [position + 1 for position, label in enumerate(query.labels) if label != IGNORE]
    assert measured == answer_positions(tokenizer, PROMPT, COMPLETION, ANSWER)
    assert tokenizer.decode([query.input_ids[p] for p in measured]).strip() == ANSWER
    assert len(measured) < sum(label != IGNORE for label in tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 128)[0].labels)


class SlowTokenizer:
    """A tokenizer without offsets (is_fast False): only `decode`, as a slow (Python) tokenizer offers."""
    is_fast = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def decode(self, ids):
        return self.tokenizer.decode(ids)


def test_token_spans_by_decoding_equal_the_fast_tokenizers_offsets(llama):
    _, tokenizer = llama
    assert tokenizer.is_fast
    ids = tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    fast = completion_token_spans(tokenizer, COMPLETION, ids)
    assert completion_token_spans(SlowTokenizer(tokenizer), COMPLETION, ids) == fast
    assert fast[0][0] == 0 and fast[-1][1] == len(COMPLETION)
    assert all(a[1] == b[0] for a, b in zip(fast, fast[1:]))                 # contiguous, covering the text


def test_answer_query_gradient_is_the_gradient_of_the_answer_nll(llama):
    model, tokenizer = llama
    tracked = find_tracked_modules(model, "mlp")
    task = TASKS["answer"]
    queries = tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 128, [task.measured_span(COMPLETION, ANSWER)])
    grads, nats = query_gradients(model, tracked, queries, batch_size=1, task=task)

    ids = torch.tensor([queries[0].input_ids])
    model.zero_grad()
    log_probs = torch.log_softmax(model(input_ids=ids).logits[0], dim=-1)
    positions = answer_positions(tokenizer, PROMPT, COMPLETION, ANSWER)
    loss = -sum(log_probs[p - 1, ids[0, p]] for p in positions)     # position p - 1 predicts token p
    loss.backward()
    assert float(nats[0]) == pytest.approx(float(loss.detach()), rel=1e-10)
    for name, module in tracked.items():
        assert torch.allclose(grads[name][0].double(), module.weight.grad, rtol=1e-8, atol=1e-12), name


def test_an_answer_that_cannot_be_measured_is_refused(llama):
    with pytest.raises(EngineInputError, match="needs the query's `answer`") as refused:
        AnswerTokens().measured_span(COMPLETION, None)
    assert refused.value.field == "answer"
    with pytest.raises(EngineInputError, match="does not occur in the completion") as refused:
        AnswerTokens().measured_span(COMPLETION, "42")
    assert refused.value.field == "answer"
    _, tokenizer = llama     # the field survives tokenize_queries' "query N:" prefix
    with pytest.raises(EngineInputError, match="query 1 has an empty completion") as refused:
        tokenize_queries(tokenizer, [PROMPT, PROMPT], [COMPLETION, ""], 128)
    assert refused.value.field == "completion"
    with pytest.raises(EngineInputError, match="query 0: no completion token covers") as refused:
        tokenize_queries(tokenizer, [PROMPT], [COMPLETION], 128, [(len(COMPLETION) + 5, len(COMPLETION) + 9)])
    assert refused.value.field == "answer"
