#!/usr/bin/env bash
# Probe speed on more than an hour of audio: two tokenizers on the corpus's train split
# (~1.5 h of the 2000-sentence corpus), every metric on (LM trained on dev units).
# Usage: bench/probe_speed.sh CORPUS MODEL_A MODEL_B [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=$1; a=$2; b=$3; out=${4:-data/probe-speed}
/usr/bin/time -f "wall %e s, max RSS %M KB" .venv/bin/speechtok probe --model "$a" --model "$b" \
  --corpus "$corpus" --split train --lm-split dev --out "$out" 2>&1 | grep -v "it/s\|utt/s\|INFO"
