#!/usr/bin/env bash
# The GPU check, one command of at most 8 minutes. From the repository root:
#   bash benchmarks/gpu_check.sh            # options: see benchmarks/gpu_check.py --help
# Needs TensorFlow with GPU support and this package importable (the project's .venv, or
# PYTHON=/path/to/python), and ../shared or $MACO_SHARED.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" PYTHONUNBUFFERED=1
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
