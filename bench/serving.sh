#!/usr/bin/env bash
# The gRPC service (Ray Serve on this machine) vs the same ONNX Runtime in process: unary
# throughput at concurrency 1 / 8 / 32 (passes by turns), then 1 to 64 concurrent real-time
# streams with p50 / p95 per-chunk latency and busy cores, and a search for the most streams within
# 100 ms p95; the plot goes to bench/serving-streams.png.
# Usage: bench/serving.sh [MODEL] [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/speechtok bench serving --model "${1:-dcspin-tiny-k100-stream}" --corpus "${2:-data/corpus}" \
	--concurrency 1 8 32 --streams 1 4 8 12 16 20 24 32 64 --stream-seconds 8 \
	--capacity-ms 100 --plot bench/serving-streams.png 2>&1 | grep -v "raylet\|Warning\|warn(\|^INFO \|Token authentication"
