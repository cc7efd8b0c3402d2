#!/usr/bin/env bash
# What one accelerator buys (bench/gpu.py): base-size HuBERT and DC-Spin training steps per
# second (bf16) and tokenization x real time (whole utterances and windows, batch 1/8/64, torch
# and ONNX Runtime where it can run), on random-init models, in a few minutes. Needs only torch
# (no Ray, no audio I/O): it runs on a bare GPU machine with this checkout.
# Usage: bench/gpu.sh [--device cuda|cuda:N|cpu] [--small] [--json FILE]
#   --small: the CPU-sized run (tiny model, ~1 min) that CI keeps working.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
exec "$py" -m bench.gpu "$@"
