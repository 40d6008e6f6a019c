#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: makes .venv (Python 3.11) and installs the pinned requirements into it.
# Usage: source scripts/setup_env.sh [requirements files...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
LOG="$VENV/pip-install.log"
want="$*"
stamp="$VENV/.installed-$(cat "$@" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing ${want} (log: $LOG)"
  args=()
  for f in "$@"; do args+=(-r "$f"); done
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${args[@]}" >"$LOG" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$LOG" | tail -n 30
    echo "[setup] pip install failed; full log: $LOG" >&2
    exit 1
  fi
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
