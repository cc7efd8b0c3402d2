#!/usr/bin/env bash
# The Ray Data batch job vs the same ONNX Runtime in process, on the same files (the first
# 15 minutes of the corpus's train split), side by side in one run.
# Usage: bench/batch.sh [MODEL] [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${2:-data/corpus}
.venv/bin/speechtok bench batch ${1:+--model "$1"} --input "$corpus/audio/train" --seconds 900 \
	--threads 2 2>&1 | grep -v "Warning\|warn("
