#!/usr/bin/env bash
# Run a command against `speechtok serve` with the shipped default model on a free loopback port
# and a fresh API key: the command sees $ADDR, $KEY and $SERVER (the server's pid); the server
# is stopped (SIGTERM) when it ends. Extra `speechtok serve` flags in $SERVE_ARGS.
# Usage: bench/with_server.sh COMMAND...   e.g. bench/with_server.sh bash -c 'echo $ADDR'
set -euo pipefail
cd "$(dirname "$0")/.."
export KEY="bench-$RANDOM$RANDOM"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export ADDR="127.0.0.1:$port"
out=$(mktemp)
# shellcheck disable=SC2086
.venv/bin/speechtok serve --host 127.0.0.1 --port "$port" --set "api_keys=[$KEY]" ${SERVE_ARGS:-} \
	>"$out" 2>/dev/null &
export SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -f "$out"' EXIT
until grep -q '"serving"' "$out"; do
	kill -0 $SERVER 2>/dev/null || { echo "the server exited before serving" >&2; exit 1; }
	sleep 1
done
"$@"
