#!/usr/bin/env bash
# Soak (bench/soak.py): `speechtok serve` with the shipped default (bench/with_server.sh) under
# 4 real-time streams and unary calls at 70 % of its measured unary capacity for 30 minutes;
# writes data/soak/soak.json and soak.png (RSS per process, open descriptors, p95 latency,
# errors over time) and prints a summary with pass/fail on RSS and descriptor growth.
# Usage: bench/soak.sh [--minutes 30] [--share 0.7] [--streams 4] [--corpus DIR --split test]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/with_server.sh bash -c '.venv/bin/python -m bench.soak --addr "$ADDR" --api-key "$KEY" \
	--server-pid "$SERVER" "$@"' soak "$@"
