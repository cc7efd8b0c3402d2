#!/usr/bin/env bash
# Fairness (bench/fairness.py): `speechtok serve` with the shipped default (bench/with_server.sh)
# and three more keys: a well-behaved client's p95 alone, beside an abuser without a quota, and
# beside an abuser whose key has a quota of QUOTA_RPS calls/s (default 2).
# Usage: bench/fairness.sh [FLAGS for bench.fairness: --seconds 20 --rate 4 --abuse 16 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export SPEECHTOK_API_KEYS="good-$RANDOM,free-$RANDOM,limited-$RANDOM"
export QUOTA_RPS=${QUOTA_RPS:-2}
IFS=, read -r good free limited <<<"$SPEECHTOK_API_KEYS"
export GOOD=$good FREE=$free LIMITED=$limited
SERVE_ARGS="--set client_quotas={\"$limited\":{\"rps\":$QUOTA_RPS}}" bench/with_server.sh bash -c \
	'.venv/bin/python -m bench.fairness --addr "$ADDR" --good-key "$GOOD" --free-key "$FREE" \
	--limited-key "$LIMITED" --quota "$QUOTA_RPS calls/s" "$@"' fairness "$@"
