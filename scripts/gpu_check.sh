#!/usr/bin/env bash
# GPU configs end to end on a GPU in a few minutes (synthetic full-resolution data: fit, test
# with sliding windows, predict, throughput against a plain loop). See scripts/gpu_check.py.
#   ./scripts/gpu_check.sh                 # on a GPU machine with the project installed
#   ./scripts/gpu_check.sh --work /tmp/gc  # keep everything in /tmp/gc
#   ./scripts/gpu_check.sh --cpu           # the same steps, tiny, on a CPU (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
