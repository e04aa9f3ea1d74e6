#!/usr/bin/env bash
# Set-up command 1: environment + the main job on the embedded synthetic default.
# Generates data/synthetic/ on first use, trains the joint model (configs/demo.yaml), tests the
# best checkpoint and prints what it learned. W&B runs offline unless you are logged in
# (`wandb login`).
# A fit stopped by SIGTERM or Ctrl-C exits non-zero (143/130), so nothing half-trained is tested;
# resume it with: multitask-dr fit --config configs/demo.yaml --ckpt_path checkpoints/demo/last.ckpt
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
.venv/bin/multitask-dr fit --config configs/demo.yaml "$@"
# --summary: after Lightning's table, the few numbers that matter, where the checkpoint and
# the W&B run are, and the commands to try next (multitask_dr/summary.py).
.venv/bin/multitask-dr test --config configs/demo.yaml --ckpt_path checkpoints/demo/best.ckpt \
  --summary true "$@"
