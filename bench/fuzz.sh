#!/usr/bin/env bash
# The malformed-input corpus (bench/fuzz.py, seeded) against `speechtok serve` with the shipped
# default model on a free loopback port: a summary table of cases per family and status, any
# status the server should not have given, failed health / correct-request checks, and the peak
# RSS of the server's process tree (Ray and every replica, summed from /proc) during the run.
# Usage: bench/fuzz.sh [SEED] [CASES]   (exit 1 when a case or a check failed)
set -euo pipefail
cd "$(dirname "$0")/.."
key="fuzz-$RANDOM$RANDOM"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp)
.venv/bin/speechtok serve --host 127.0.0.1 --port "$port" --set "api_keys=[$key]" >"$out" 2>/dev/null &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$out"' EXIT
until grep -q '"serving"' "$out"; do
	kill -0 $server 2>/dev/null || { echo "fuzz: the server exited before serving" >&2; exit 1; }
	sleep 1
done
.venv/bin/python -m bench.fuzz --addr "127.0.0.1:$port" --api-key "$key" --seed "${1:-0}" \
	--cases "${2:-1200}" --rss-pid $server 2> >(grep -v "mpg123\|libmpg123\|Warning\|Note:" >&2)
