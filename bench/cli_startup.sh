#!/usr/bin/env bash
# Wall time of `speechtok --help` (the parser built, nothing run): the median of 5 starts.
# Usage: bench/cli_startup.sh [REPO_DIR]   (another checkout, e.g. a `git worktree` of an older
# commit, run with this checkout's virtualenv; default: this checkout)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "${1:-$here}"
TIMEFORMAT=%R
# the command's module: speechtok.cli since the layout of floors, tokenizer.cli before it
module=tokenizer.cli
[ -f speechtok/cli.py ] && module=speechtok
for _ in 1 2 3 4 5; do
	{ time "$here/.venv/bin/python" -m $module --help >/dev/null; } 2>&1
done | sort -n | sed -n 3p | xargs printf "speechtok --help: %s s (median of 5) in $(pwd)\n"
