#!/usr/bin/env bash
# A HuBERT-Base-sized model (94 M parameters, random init) through the whole path on this
# machine: Hugging Face checkpoint -> speechtok import -> DC-Spin (a few steps) -> streaming
# student (a few steps) -> export -> ONNX Runtime parity -> bench runtime -> the service
# (served units = offline units) -> a batch job (rows = offline units). Prints each step's wall
# time; the outputs stay in OUT.
# Usage: bench/base_e2e.sh [OUT]   (default data/base-e2e; about 15-25 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/base-e2e}
py=.venv/bin/python
st=.venv/bin/speechtok
rm -rf "$out" && mkdir -p "$out"
times="$out/times.txt"
: >"$times"

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

timed() { # NAME CMD...: run CMD, append "NAME: N s" to the times file
	local name=$1 start
	shift
	start=$(date +%s.%N)
	"$@"
	echo "$name: $(since "$start") s" | tee -a "$times"
}

timed "corpus (40 sentences)" $st corpus synth --out "$out/corpus" --sentences 40 \
	--parallel-sentences 0 --seed 1 >/dev/null
timed "random-init HF HubertModel, base config" $py -c "
import torch, transformers
torch.manual_seed(0)
transformers.HubertModel(transformers.HubertConfig()).save_pretrained('$out/hf')"
timed "speechtok import hf" $st import hf "$out/hf" --out "$out/base"
timed "speechtok train dcspin (4 steps)" $st train dcspin --corpus "$out/corpus" --base "$out/base" \
	--run "$out/dcspin-run" --out "$out/dcspin" --set steps=4 --set batch_size=4 \
	--set warmup_steps=1 --set views=1 --set checkpoint_every=4 --set log_every=1
timed "speechtok train distill (4 steps)" $st train distill --corpus "$out/corpus" \
	--teacher "$out/dcspin" --run "$out/student-run" --out "$out/student" --set steps=4 \
	--set batch_size=4 --set warmup_steps=1 --set views=1 --set checkpoint_every=4 --set log_every=1
timed "speechtok export (model.onnx + window.onnx)" $st export "$out/student" --window 980,320,260
timed "speechtok bench parity (test split)" $st bench parity --model "$out/student" \
	--corpus "$out/corpus" --split test | tee "$out/parity.json"
timed "speechtok bench runtime (20 s of audio per path)" $st bench runtime --model "$out/student" \
	--corpus "$out/corpus" --split train --seconds 20 | tee "$out/runtime.md"

ls "$out"/corpus/audio/test/*.flac | head -3 >"$out/files.txt"
# shellcheck disable=SC2046
$st tokenize --model "$out/student" $(cat "$out/files.txt") >"$out/offline.jsonl"
port=$($py -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
start=$(date +%s.%N)
$st serve --model "$out/student" --port "$port" >"$out/serve.out" 2>"$out/serve.err" &
server=$!
until [ -s "$out/serve.out" ] || ! kill -0 $server 2>/dev/null; do sleep 1; done
echo "speechtok serve (until ready): $(since "$start") s" | tee -a "$times"
# shellcheck disable=SC2046
$st client tokenize --addr "127.0.0.1:$port" $(cat "$out/files.txt") >"$out/served.jsonl"
kill -INT $server && wait $server || true
$py - "$out" <<'EOF' | tee -a "$times"
import json, sys
out = sys.argv[1]
offline = [json.loads(line) for line in open(f"{out}/offline.jsonl")]
served = [json.loads(line) for line in open(f"{out}/served.jsonl")]
same = all(a["units"] == b["units"] and a["fingerprint"] == b["fingerprint"]
           for a, b in zip(offline, served, strict=True))
print(f"served units equal offline units: {same} ({len(offline)} files)")
EOF
timed "speechtok batch (test split)" $st batch --input "$out/corpus/audio/test" --out "$out/batch" \
	--model "$out/student" --no-progress >"$out/batch.json"
$st batch verify "$out/batch" | tail -1
echo "--- $out/times.txt"
cat "$times"
