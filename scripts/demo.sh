#!/usr/bin/env bash
# The demo command: sets up .venv, runs the demo world through precompute (re-using a complete run in
# runs/demo), then serves the dashboard on http://127.0.0.1:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m precompute demo --out runs/demo
echo "[demo] dashboard: http://127.0.0.1:8501  (Ctrl-C to stop)"
exec python -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port 8501 -- --run runs/demo
