#!/usr/bin/env bash
# The recipe of the shipped default model, step by step (each step resumes or skips if done).
#   1. corpus  2. HuBERT pretraining on MFCC k-means targets (resumable, in pieces)
#   3. DC-Spin fine-tuning  4. the k-means baseline on the same encoder layer
#   5. streaming-window curve on dev -> export both with the chosen window  6. probe on test
#   7. the unit HiFi-GAN vocoder for the default model (resumable)  8. its resynthesis probe
#   9. the streaming-exact student distilled from the DC-Spin model: train, window curve,
#      export with its incremental step graph (160 ms steps)  10. probe of teacher and student
#   colld, colld-probe (not in the default list): a cheaper student compressed from the default
#      by CoLLD, exported with steps, probed beside it (issue 19)
#   report-card (not in the default list): every shipped model's report card (issue 21)
# Usage: scripts/train_default.sh [STEP...]   (default: all steps). Times are in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
st=.venv/bin/speechtok
corpus=data/corpus
hubert=data/models/hubert-tiny
dcspin=models/dcspin-tiny-k100
kmeans=models/hubert-tiny-km100
vocoder=models/vocoder-dcspin-tiny
stream=models/dcspin-tiny-k100-stream
colld=data/models/colld-tiny
steps=${*:-corpus hubert dcspin kmeans window probe vocoder resynth stream stream-probe}

chosen() {  # the window a streaming-curve folder chose, as L,C,R
  python3 -c "import json, sys; w = json.load(open(sys.argv[1] + '/curve.json'))['chosen']; print(f\"{w['left_ms']},{w['chunk_ms']},{w['right_ms']}\")" "$1"
}

for step in $steps; do
  case $step in
    corpus)
      [ -f $corpus/corpus.json ] || $st corpus synth --out $corpus --sentences 2000 --core-voices \
        --holdout-engine none --parallel-sentences 100 --seed 0 ;;
    hubert)  # stop and rerun at will: it resumes from data/runs/hubert-tiny/checkpoint.pt
      $st train hubert --corpus $corpus --targets models/mfcc-km100 --run data/runs/hubert-tiny \
        --out $hubert --threads 2 ${HUBERT_ARGS:-} ;;
    dcspin)
      $st train dcspin --corpus $corpus --base $hubert --run data/runs/dcspin-tiny \
        --out $dcspin --config scripts/dcspin-tiny.yaml --threads 2 ;;
    kmeans)
      $st train kmeans --corpus $corpus --encoder $hubert --K 100 --out $kmeans ;;
    window)
      $st streaming-curve --model $dcspin --corpus $corpus --split dev --max-utterances 40 \
        --backend torch \
        --out data/streaming-curve
      window=$(chosen data/streaming-curve)
      $st export $dcspin --window "$window"
      $st export $kmeans --window "$window" ;;
    probe)
      $st probe --model $kmeans --model $dcspin --corpus $corpus --split test --lm-split dev \
        --out data/probe-default ;;
    vocoder)  # stop and rerun at will: it resumes from data/runs/vocoder-tiny/checkpoint.pt
      $st vocoder train --units-model $dcspin --corpus $corpus --run data/runs/vocoder-tiny \
        --out $vocoder --config scripts/vocoder-tiny.yaml --threads 2 ${VOCODER_ARGS:-} ;;
    resynth)  # every test utterance, served windows and full utterance
      for mode in windows full; do
        $st probe --model $dcspin --corpus $corpus --split test --lm-split dev --no-perturb \
          --vocoder $vocoder --resynth-utterances 100 --out data/probe-vocoder-$mode \
          $([ $mode = full ] && echo --full-utterance)
      done ;;
    stream)  # resumable: data/runs/distill-tiny/checkpoint.pt
      $st train distill --teacher $dcspin --corpus $corpus --run data/runs/distill-tiny \
        --out $stream --threads 2
      $st streaming-curve --model $stream --corpus $corpus --split dev --max-utterances 40 \
        --backend torch --out data/streaming-curve-stream
      window=$(chosen data/streaming-curve-stream)
      $st export $stream --window "$window" --step-ms 160 ;;
    stream-probe)
      $st probe --model $dcspin --model $stream --corpus $corpus --split test --lm-split dev \
        --out data/probe-stream ;;
    colld)  # resumable: data/runs/colld-tiny/checkpoint.pt
      $st train colld --teacher $stream --corpus $corpus --run data/runs/colld-tiny \
        --out $colld --threads 2 ${COLLD_ARGS:-}
      $st export $colld --window 340,160,100 --step-ms 160 ;;
    colld-probe)
      $st probe --model $stream --model $colld --corpus $corpus --split test --lm-split dev \
        --out data/probe-colld ;;
    report-card)  # every shipped model side by side, ABX, SUPERB and listening, on the wide
      # corpus's test split (scripts/train_wide.sh corpus), one pass per utterance (the
      # streaming row compares each model's served windows), then a screenshot of report.html
      [ -f data/corpus-wide/corpus.json ] || scripts/train_wide.sh corpus
      $st probe --model models/mfcc-km100 --model $kmeans --model $dcspin --model $stream \
        --corpus data/corpus-wide --split test --lm-split dev --full-utterance --abx --superb \
        --vocoder $vocoder --resynth-utterances 20 --out data/report-card
      chromium --headless --no-sandbox --hide-scrollbars --window-size=1280,2400 \
        --screenshot="$PWD/docs/report-card.png" "file://$PWD/data/report-card/report.html" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
