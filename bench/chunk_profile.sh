#!/usr/bin/env bash
# Where a streamed chunk's CPU time goes (bench/chunk_profile.py): py-spy samples the gRPC ingress
# and the model replica of `speechtok serve` (bench/with_server.sh) while real-time streams run;
# a table of each process's samples per stage of the chunk's path; raw stacks in --out.
# Usage: bench/chunk_profile.sh [--streams 12] [--seconds 30] [--corpus DIR --split test]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/with_server.sh bash -c '.venv/bin/python -m bench.chunk_profile --addr "$ADDR" \
	--api-key "$KEY" "$@"' chunk_profile "$@"
