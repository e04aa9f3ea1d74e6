#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the package.
# pyproject.toml gives ranges; constraints.txt pins the torch/torchvision pair these machines
# need (see docs/install.md). Extras: pretrained (ImageNet weights), dev (tests, lint), docs (site).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the dependency list changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[pretrained,dev,docs]"
  touch "$stamp"
fi
