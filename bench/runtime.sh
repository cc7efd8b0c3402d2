#!/usr/bin/env bash
# torch eager vs ONNX Runtime, canonical windows, a simulated stream, batch 1 vs 8 — side by side
# in one run, on the corpus's test split (or a freshly synthesized one without a corpus).
# Usage: bench/runtime.sh [MODEL] [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
[ -n "${1:-}" ] && args+=(--model "$1")
[ -n "${2:-}" ] && args+=(--corpus "$2")
.venv/bin/speechtok bench runtime "${args[@]}" --seconds 60 --threads 2 2>&1 | grep -v "Warning\|warn("
