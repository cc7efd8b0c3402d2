#!/usr/bin/env bash
# Replicas killed under load (bench/faults.py): SIGKILL of the model replica, then of the gRPC
# ingress, of `speechtok serve` with the shipped default (bench/with_server.sh) while 4 SDK
# clients call Tokenize in a loop and 2 stream files; a table of requests accepted, answered,
# lost and with wrong units, retries and resumed streams. Extra flags go to bench.faults
# (--corpus DIR --split test; default: a small synthesized corpus).
# Usage: bench/faults.sh [FLAGS]   (exit 1 when a request was lost or answered wrong)
set -euo pipefail
cd "$(dirname "$0")/.."
bench/with_server.sh bash -c '.venv/bin/python -m bench.faults --addr "$ADDR" --api-key "$KEY" "$@"' \
	faults "$@"
