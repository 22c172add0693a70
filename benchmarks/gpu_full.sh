#!/usr/bin/env bash
# Full mode on a CUDA machine in one command: see `benchmarks/gpu_full.sh --help`
# (the script is benchmarks/gpu_full.py; run `make install` first).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python benchmarks/gpu_full.py "$@"
