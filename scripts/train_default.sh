#!/usr/bin/env bash
# The recipe of every shipped model, step by step (each step resumes or skips if done).
# Unsupervised, on data/corpus:
#   corpus  HuBERT pretraining on MFCC k-means targets (hubert, resumable, in pieces)
#   dcspin  DC-Spin fine-tuning;  kmeans  the k-means baseline on the same encoder layer
#   window  streaming-window curve on dev -> export both with the chosen window;  probe on test
#   stream  the streaming-exact student of that DC-Spin model: train, window curve, export with
#           its incremental step graph (160 ms steps);  stream-probe  teacher and student
# SUPERVISED (phone labels), on data/corpus-wide; the default:
#   supervised  the wide corpus, the phone-fine-tuned base (scripts/train_wide.sh), DC-Spin on
#           it keeping the phone loss, with the label loss through its tokens;
#           supervised-stream  its streaming-exact student
#   vocoder  the unit HiFi-GAN for the default's units (resumable);  resynth  its probe
#   quality  the README's token-quality table, test and unseen engine
# R-Spin (rspin-tiny, rspin-tiny-stream): scripts/train_wide.sh rspin rspin-stream
#   colld, colld-probe (not in the default list): a cheaper student compressed from the
#      unsupervised student by CoLLD, exported with steps, probed beside it (issue 19)
#   report-card (not in the default list): every shipped model's report card (issue 21)
# Usage: scripts/train_default.sh [STEP...]   (default: all steps). Times are in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
st=.venv/bin/speechtok
corpus=data/corpus
hubert=data/models/hubert-tiny
dcspin=models/dcspin-tiny-k100
kmeans=models/hubert-tiny-km100
unsup_stream=models/dcspin-tiny-k100-stream
wide=data/corpus-wide
sup=models/dcspin-phones-k100
stream=models/dcspin-phones-k100-stream  # the default (SUPERVISED)
vocoder=models/vocoder-dcspin-phones
colld=data/models/colld-tiny
steps=${*:-corpus hubert dcspin kmeans window probe stream stream-probe supervised supervised-stream vocoder resynth quality}

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
    vocoder)  # stop and rerun at will: it resumes from data/runs/vocoder-units/checkpoint.pt
      $st vocoder train --units-model $sup --corpus $corpus --run data/runs/vocoder-units \
        --out $vocoder --config scripts/vocoder-tiny.yaml --threads 2 ${VOCODER_ARGS:-} ;;
    resynth)  # every test utterance: the default's units as served (by steps: exactly its
      # full-utterance units), and the teacher's full-utterance units the vocoder learnt from
      $st probe --model $stream --corpus $corpus --split test --lm-split dev --no-perturb \
        --vocoder $vocoder --resynth-utterances 100 --out data/probe-vocoder
      $st probe --model $sup --corpus $corpus --split test --lm-split dev --no-perturb \
        --vocoder $vocoder --resynth-utterances 100 --full-utterance \
        --out data/probe-vocoder-teacher ;;
    stream)  # resumable: data/runs/distill-tiny/checkpoint.pt
      $st train distill --teacher $dcspin --corpus $corpus --run data/runs/distill-tiny \
        --out $unsup_stream --threads 2
      $st streaming-curve --model $unsup_stream --corpus $corpus --split dev --max-utterances 40 \
        --backend torch --out data/streaming-curve-stream
      window=$(chosen data/streaming-curve-stream)
      $st export $unsup_stream --window "$window" --step-ms 160 ;;
    stream-probe)
      $st probe --model $dcspin --model $unsup_stream --corpus $corpus --split test --lm-split dev \
        --out data/probe-stream ;;
    supervised)  # SUPERVISED default: scripts/train_wide.sh builds the wide corpus, its
      # 1000-utterance subset (R-Spin's manifest), the k-means baselines of the quality table,
      # the phone-fine-tuned base and the teacher (DC-Spin on that base keeping the phone loss,
      # with the label loss through the tokens, on the whole training split for 9600 steps,
      # drawing as many flite as espeak-ng crops; the run of train_wide.sh teacher-balanced: an
      # existing run folder only writes the model), exported with the first DC-Spin model's window
      TEACHER_OUT=$sup scripts/train_wide.sh corpus subset baselines phones teacher-balanced ;;
    supervised-stream)  # resumable: data/runs/distill-units-w10-full-balanced/checkpoint.pt (the
      # run of train_wide.sh teacher-balanced-stream: an existing run folder only writes the
      # model)
      $st train distill --teacher $sup --corpus $wide --set steps=6000 --set balance_engines=true \
        --run data/runs/distill-units-w10-full-balanced --out $stream --threads 2 ${DISTILL_ARGS:-}
      $st export $stream --window 160,320,40 --step-ms 160 ;;  # the first student's window
    quality)  # the README's token-quality table: every kind of model, test and unseen engine
      for split in test unseen; do
        $st probe --model data/models/mfcc-km100-wide --model data/models/hubert-tiny-km100-wide \
          --model $dcspin --model $unsup_stream --model data/models/hubert-tiny-phones-km100 \
          --model $sup --model $stream --corpus $wide --split $split --lm-split dev \
          --full-utterance --out data/probe-quality-$split
      done ;;
    colld)  # resumable: data/runs/colld-tiny/checkpoint.pt
      $st train colld --teacher $unsup_stream --corpus $corpus --run data/runs/colld-tiny \
        --out $colld --threads 2 ${COLLD_ARGS:-}
      $st export $colld --window 340,160,100 --step-ms 160 ;;
    colld-probe)
      $st probe --model $unsup_stream --model $colld --corpus $corpus --split test --lm-split dev \
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
