#!/usr/bin/env bash
# Set-up command 2: environment + lint + the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
# One thread: on a shared 2-core machine two OpenMP threads run many times slower under load.
export OMP_NUM_THREADS=1 WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
.venv/bin/ruff check multitask_dr tests benchmarks docs
.venv/bin/ruff format --check multitask_dr tests benchmarks docs
.venv/bin/python -m pytest "$@"
