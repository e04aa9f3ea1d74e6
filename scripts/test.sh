#!/usr/bin/env bash
# Set-up command 2: environment + lint + the strict docs build + the whole test suite (what CI
# runs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
# One thread: on a shared 2-core machine two OpenMP threads run many times slower under load.
export OMP_NUM_THREADS=1 WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
.venv/bin/ruff check multitask_dr tests benchmarks docs
.venv/bin/ruff format --check multitask_dr tests benchmarks docs
# The docs site must build without a single warning (broken link, unparsable docstring); built
# into a temporary folder so nothing is left in the tree. The two variables silence banners
# that mkdocs-material and a plugin print about MkDocs 2.
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true .venv/bin/mkdocs build --strict --quiet \
  -d "$site"
.venv/bin/python -m pytest "$@"
