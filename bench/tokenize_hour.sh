#!/usr/bin/env bash
# Wall time to tokenize one hour of audio through the CLI (decode + ONNX Runtime as the model
# serves, by incremental steps or canonical windows, 16 files sharing model calls + JSON lines),
# on the corpus's train split: the first files that add up to 3600 s.
# Usage: bench/tokenize_hour.sh [MODEL] [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-}; corpus=${2:-data/corpus}
mapfile -t files < <(.venv/bin/python - "$corpus" <<'PY'
import sys, soundfile as sf
from tokenizer.corpus.manifest import load_corpus
root, utts = load_corpus(sys.argv[1])
total = 0.0
for u in sorted(utts, key=lambda u: u.id):
    if u.split != "train" or total >= 3600:
        continue
    path = u.audio_path(root)
    total += sf.info(str(path)).duration
    print(path)
print(f"{total:.1f} s of audio", file=sys.stderr)
PY
)
echo "${#files[@]} files" >&2
start=$(date +%s.%N)
.venv/bin/speechtok tokenize ${model:+--model "$model"} "${files[@]}" > /tmp/speechtok-hour.jsonl
end=$(date +%s.%N)
python3 -c "print(f'tokenized {len(open(\"/tmp/speechtok-hour.jsonl\").readlines())} files in {$end - $start:.1f} s')"
