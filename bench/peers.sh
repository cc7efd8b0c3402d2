#!/usr/bin/env bash
# Side by side with the peers (bench/peers.py), one run: the textlesslib / fairseq way (torch
# eager, batch 1, scikit-learn KMeans.predict) against speechtok in process (ONNX Runtime, whole
# utterances and canonical windows) and through `speechtok serve` (bench/with_server.sh), on the
# same k-means model's weights; x real time, ratios and unit agreement.
# Usage: bench/peers.sh [--model hubert-tiny-km100] [--corpus DIR --split test] [--seconds 60]
set -euo pipefail
cd "$(dirname "$0")/.."
model=hubert-tiny-km100
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = --model ] && model=${args[i + 1]}; done
SERVE_ARGS="--model $model" bench/with_server.sh bash -c \
	'.venv/bin/python -m bench.peers --addr "$ADDR" --api-key "$KEY" "$@"' peers "$@"
