#!/usr/bin/env bash
# The malformed-input corpus (bench/fuzz.py, seeded) against `speechtok serve` with the shipped
# default model (bench/with_server.sh): a summary table of cases per family and status, any
# status the server should not have given, failed health / correct-request checks, and the peak
# RSS of the server's process tree (Ray and every replica, summed from /proc) during the run.
# Usage: bench/fuzz.sh [SEED] [CASES]   (exit 1 when a case or a check failed)
set -euo pipefail
cd "$(dirname "$0")/.."
export SEED=${1:-0} CASES=${2:-1200}
bench/with_server.sh bash -c '.venv/bin/python -m bench.fuzz --addr "$ADDR" --api-key "$KEY" \
	--seed "$SEED" --cases "$CASES" --rss-pid "$SERVER" \
	2> >(grep -v "mpg123\|libmpg123\|Warning\|Note:" >&2)'
