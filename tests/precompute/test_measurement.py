"""`--measurement answer` end to end on the tiny world: the run measures only each answer's tokens (engine.task).
Where every completion token is the answer's the scores equal the default run's; where not (a leading space
token, the reasoning before the answer), the query's measured tokens and nats shrink and its scores change. A query whose answer is not in its completion is refused
in one line naming the file, line and field."""
import json

import numpy as np

from tests.precompute.conftest import query_rows, run_args, run_cli, write_jsonl


def read_queries(run):
    return [json.loads(line) for line in (run / "queries.jsonl").read_text().splitlines()]


def test_answer_measurement_scores_only_the_answer(world, model_runs, tmp_path):
    out = tmp_path / "answer"
    run_cli(*run_args(world, out, "--measurement", "answer"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["measurement"] == "answer"
    default, answer = read_queries(model_runs["ekfac"]), read_queries(out)
    scores_default = np.load(model_runs["ekfac"] / "scores.npy")
    scores_answer = np.load(out / "scores.npy")
    whole = []
    for row, (before, after) in enumerate(zip(default, answer)):
        whole.append(after["n_completion_tokens"] == before["n_completion_tokens"])   # every token is the answer's
        if whole[-1]:
            np.testing.assert_allclose(scores_answer[row], scores_default[row], rtol=1e-5, atol=1e-9)
        else:
            assert after["n_completion_tokens"] < before["n_completion_tokens"]
            assert after["nats"] < before["nats"]
            assert not np.allclose(scores_answer[row], scores_default[row], rtol=1e-3)
    assert any(whole) and not all(whole)          # both cases exercised (" 2" is one token; " Marn" measures "Marn")


def test_an_answer_missing_from_its_completion_is_refused(world, tmp_path):
    rows = query_rows()
    rows[2]["answer"] = "42"
    queries = write_jsonl(tmp_path / "queries.jsonl", rows)
    out = tmp_path / "refused"
    args = run_args(world, out, "--measurement", "answer")
    args[args.index("--queries") + 1] = queries
    result = run_cli(*args, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {queries}: line 3: field 'answer': answer '42' does not occur in the completion")
    assert json.loads((out / "manifest.json").read_text())["status"] != "complete"
