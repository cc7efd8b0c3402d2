#!/usr/bin/env bash
# Corpus builder benchmark and determinism check (issue: Foundation).
# Builds the 2000 + 100-sentence corpus of the first recipe (22 core voices, no held-out engine)
# twice with the same seed, times it, checks it, and compares manifest and audio checksums of
# the two builds. (The wide corpus's one build prints its own summary line: see the README.)
# Usage: bench/corpus.sh [OUT_DIR]   (default data/bench-corpus; needs ~0.5 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/bench-corpus}
st=.venv/bin/speechtok
rm -rf "$out/a" "$out/b"
mkdir -p "$out"
for run in a b; do
  $st corpus synth --out "$out/$run" --sentences 2000 --parallel-sentences 100 --seed 0 --jobs 2 \
    --core-voices --holdout-engine none \
    2>/dev/null | tee "$out/$run.summary.json"
done
$st corpus check "$out/a" 2>&1 | tail -1
digest() { (cd "$1" && find . -type f -name '*.flac' -o -name manifest.jsonl | sort | xargs sha256sum | sha256sum); }
a=$(digest "$out/a"); b=$(digest "$out/b")
echo "checksum of all audio + manifest: run a ${a%% *}  run b ${b%% *}"
[ "$a" = "$b" ] && echo "identical: yes" || { echo "identical: NO"; exit 1; }
