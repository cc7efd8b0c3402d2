#!/usr/bin/env bash
# The token-quality recipe on the wide corpus (issue 17), step by step; every step resumes or
# skips if done. Numbers and wall times are in the README ("Token quality on the wide corpus").
#   corpus     the 11.8-hour corpus: 70 voices, festival held out as the unseen engine, one
#              augmented copy of each training utterance
#   subset     a seeded 1000-utterance training manifest for the two-view runs (short runs:
#              their frozen-layer cache of all 13,600 training utterances is not needed)
#   baselines  k-means K=100 on MFCC and on the shipped base encoder, fitted on the wide corpus
#   phones     SUPERVISED variant: phone frame classification of the shipped base (resumable,
#              rerun to continue), then k-means K=100 on it
#   it2        (not in the default list) HuBERT iteration 2 from the shipped base on k-means of
#              its layer 2, resumable (HUBERT_ARGS="--set steps=4000 --max-minutes 40": the run
#              of the README), k-means on its layers 2 and 3, probed beside MFCC k-means and
#              the targets
#   probe      every model above and the shipped DC-Spin, on test and on unseen
#   dcspin     DC-Spin from k-means-initialised codebooks on the phone-fine-tuned base
#              (supervised); with UNSUPERVISED=dcspin-kminit:models/hubert-tiny also on the
#              shipped base
#   dcspin-phones SUPERVISED: the same run keeping the phone loss (--phone-labels) with
#              Sinkhorn shares from k-means (scripts/dcspin-phones.yaml)
#   sweep      (not in the default list) SUPERVISED: dcspin-phones with one setting changed per
#              run (perturbation strength, phone-loss weight, lr, layers, K1, Sinkhorn eps),
#              k-means on its tuned features, probed side by side on test
#   units      (not in the default list) SUPERVISED: dcspin-phones plus the label loss through the
#              tokens (unit_label_weight 3 and 10, 400 steps; 10 for 800 steps), probed on test
#              beside k-means on the base and dcspin-phones
#   units-stream (not in the default list) the streaming-exact student of units-w10-s800,
#              exported as the shipped ones, probed on test and unseen beside the default
#   teacher    (not in the default list) SUPERVISED, the subset's teacher alone (the default's
#              until teacher-full): units-w10 for 1600 steps on the 1000-utterance subset
#   units-balanced (not in the default list) SUPERVISED, the subset's teacher's recipe on 1000
#              training utterances half flite, half espeak-ng (train-1k: 21 % flite), probed
#              on test and unseen beside the subset's teacher and k-means on the base
#   units-weighted (not in the default list) SUPERVISED, the subset's teacher's recipe on
#              train-1k with balance_engines (crops drawn half flite, half espeak-ng), probed
#              beside the subset's teacher, units-balanced's and k-means on the base
#   units-long (not in the default list) SUPERVISED, the subset's teacher (units-w10 for 1600
#              steps), its student distilled with its tokens predicting the phones too
#              (distill --phone-labels, 1200 steps), both exported as the shipped ones, probed
#              on test and unseen beside k-means on the base and the served default
#   units-plain (not in the default list) the same teacher's student distilled without the
#              phones (1500 steps; the default's student until units-s3000), probed on test
#              and unseen beside the teacher and the served default
#   units-full (not in the default list) the default's student recipe (3000 steps) distilled
#              on the whole training split (13,600 utterances, augmented copies included)
#              instead of the 1000-utterance subset, probed beside the served default
#   units-balanced-base, units-balanced-strong (not in the default list) SUPERVISED:
#              units-balanced's teacher on the engine-balanced phone base (phones-balanced), or
#              with a speaker perturbation 1.5x as strong in its views; each probed beside it
#   units-balanced-w3 (not in the default list) SUPERVISED: units-balanced's teacher with the
#              label loss through the tokens at weight 3 (not 10), probed beside it
#   units-balanced-w3-strong (not in the default list) SUPERVISED: that teacher with the
#              perturbation 1.5x as strong in its views, probed beside both
#   teacher-full (not in the default list) SUPERVISED: the subset teacher's recipe on the
#              whole training split (13,600 utterances) for 3200 steps (the default's teacher
#              until teacher-full-s6400), written to $M/units-w10-full
#   phones-channel, phones-frontend, phones-speaker, phones-lpc, phones-balanced (not in the
#              default list) SUPERVISED: phones with half the training crops distorted (phone
#              line, codecs, noise), with the base's conv front-end frozen, with half the crops
#              given another speaker (Spin's perturbation), with half of them LPC-vocoded, or
#              with every engine's crops drawn alike (balance_engines); each model and its
#              k-means probed beside phones' own
#   teacher-full-s6400 (not in the default list) SUPERVISED: teacher-full's recipe for 6400
#              steps, not 3200 (TEACHER_ARGS="--max-minutes N" runs it in pieces; each piece
#              writes the model so far; the default's teacher until teacher-full-s9600), written
#              to $M/units-w10-full-s6400, probed beside k-means on the base
#   teacher-full-s9600 (not in the default list) SUPERVISED: the same recipe for 9600 steps
#              (TEACHER_ARGS for pieces; the default's teacher until teacher-balanced), written
#              to $M/units-w10-full-s9600, probed beside k-means on the base
#   teacher-balanced (not in the default list) SUPERVISED, the default's teacher:
#              teacher-full-s9600's recipe with balance_engines (as many flite as espeak-ng
#              crops; TEACHER_ARGS for pieces), written to $TEACHER_OUT (train_default.sh
#              supervised: the shipped model) or to $M/units-w10-full-balanced and then probed
#              beside k-means on the base and the shipped teacher
#   teacher-balanced-w3 (not in the default list) SUPERVISED: teacher-balanced's recipe with
#              the label loss through the tokens at weight 3, not 10, probed beside it;
#              teacher-balanced-w3-stream its student by the default's student recipe
#   teacher-balanced-stream (not in the default list) its student by the default's student
#              recipe (6000 steps) with balance_engines too (DISTILL_ARGS for pieces; the
#              default's student: train_default.sh supervised-stream writes it from the same
#              run), probed beside k-means on the base, its teacher and the shipped student
#   teacher-balanced-stream-strong (not in the default list) that student with 3 in 4 rows
#              perturbed (not half) and the perturbation 1.5x as strong, probed beside it
#   teacher-full-s6400-stream, teacher-full-s9600-stream (not in the default list) their
#              students by the default's student recipe (6000 steps; DISTILL_ARGS="--max-minutes
#              N" runs them in pieces; each was the default's student, the 6400-step
#              teacher's until the 9600-step teacher's, that until teacher-balanced-stream)
#   teacher-full-stream (not in the default list) teacher-full's student by units-full's recipe
#              (3000 steps), probed beside the served default and its teacher
#   teacher-full-s6000-stream (not in the default list) that student trained for 6000 steps,
#              not 3000, on teacher-full-stream's teacher scores and perturbed copies (the
#              default's student until teacher-full-s6400-stream), probed beside the teacher
#   units-ctx  (not in the default list) the same teacher's student with twice its attention
#              span per layer: is the student's bounded context what loses the teacher's PNMI?
#   units-s3000 (not in the default list) that student trained for 3000 steps, not 1500 (the
#              default's student until units-full); it reuses units-ctx's teacher scores and
#              perturbed copies if they are there
#   dcspin-probe MFCC k-means, k-means on each base and the DC-Spin models, test and unseen
#   prior      (not in the default list) DC-Spin as dcspin-kminit on the shipped base with
#              Sinkhorn target shares from the k-means cluster sizes (scripts/dcspin-prior.yaml),
#              probed beside dcspin-kminit and k-means on the base
#   rspin      (not in the default list) R-Spin (issue 18, scripts/rspin-tiny.yaml) on the shipped
#              base with the shipped DC-Spin's units as pseudo-labels, on the 1000-utterance
#              subset
#   rspin-stream (not in the default list) its streaming-exact student, copies distorted as
#              R-Spin's (scripts/distill-rspin.yaml), exported with the shipped student's window
#   robustness (not in the default list) the probe with --robustness on test: MFCC k-means,
#              k-means on the base, the shipped DC-Spin and R-Spin (and both streaming students
#              once rspin-stream has run); docs/robustness.png
# Usage: scripts/train_wide.sh [STEP...]   (default: all steps)
#   TEACHER=DIR scripts/train_wide.sh units-ctx: the units-* students distil the model DIR (they
#   were run with units-w10-s1600, the teacher shipped then) instead of training that teacher
set -euo pipefail
cd "$(dirname "$0")/.."
st=.venv/bin/speechtok
C=data/corpus-wide
M=data/models
teacher=${TEACHER:-$M/units-w10-s1600}  # the units-* students' teacher
full=$M/units-w10-full  # teacher-full's model
balanced=${TEACHER_OUT:-$M/units-w10-full-balanced}  # teacher-balanced's (train_default.sh:
# the shipped one)
steps=${*:-corpus subset baselines phones probe dcspin dcspin-phones dcspin-probe}

probe() {  # probe OUT MODEL...: full-utterance probe on test and on unseen
  local out=$1; shift
  for split in test unseen; do
    $st probe $(printf -- '--model %s ' "$@") --corpus $C --split $split --lm-split dev \
      --full-utterance --out "$out-$split"
  done
}

train_subset() {  # train_subset FILE N [ENGINE...]: $C/FILE, a seeded manifest of N training
  # utterances (N of each ENGINE when given); kept when it exists
  [ -f $C/$1 ] || python3 -c "
import json, random, sys
root, out, n, engines = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
lines = [l for l in open(root + '/manifest.jsonl') if json.loads(l)['split'] == 'train']
random.Random(0).shuffle(lines)
groups = [[l for l in lines if json.loads(l)['engine'] == e] for e in engines] or [lines]
open(root + '/' + out, 'w').writelines(sorted(l for g in groups for l in g[:n]))" $C "$@"
}

share_cache() {  # share_cache FROM TO: a run with FROM's base, utterances, views and seed has
  # the same frozen-layer cache; copied once, if FROM has one (else TO builds its own)
  [ -d data/runs/$2/cache ] || [ ! -d data/runs/$1/cache ] || {
    mkdir -p data/runs/$2; cp -r data/runs/$1/cache data/runs/$2/; }
}

phones_fine_tune() {  # phones_fine_tune SUFFIX SET...: phone fine-tuning of the shipped base
  # (run data/runs/phones-wideSUFFIX, model hubert-tiny-phonesSUFFIX) with --set SET..., and
  # k-means K=100 on it; stop and rerun at will: the run resumes from its checkpoint.pt
  $st train phones --corpus $C --valid-manifest $C --base models/hubert-tiny \
    --run data/runs/phones-wide$1 --out $M/hubert-tiny-phones$1 --threads 2 "${@:2}" \
    ${PHONES_ARGS:-}
  $st train kmeans --corpus $C --encoder $M/hubert-tiny-phones$1 --K 100 \
    --out $M/hubert-tiny-phones$1-km100 --max-utterances 1500
}

phones_variant() {  # phones_variant NAME SET...: phones_fine_tune -NAME SET..., the model and
  # its k-means probed beside the phone base and its k-means
  phones_fine_tune "-$1" "${@:2}"
  probe data/probe-phones-$1 $M/hubert-tiny-phones $M/hubert-tiny-phones-km100 \
    $M/hubert-tiny-phones-$1 $M/hubert-tiny-phones-$1-km100
}

units_dcspin() {  # units_dcspin RUN OUT DATA_ARG...: the default teacher's recipe (units-w10:
  # DC-Spin on the phone base, or on $phone_base when set, label loss through the tokens at
  # weight 10), run data/runs/RUN, exported as the shipped teacher
  $st train dcspin --base ${phone_base:-$M/hubert-tiny-phones} --phone-labels \
    --run data/runs/$1 --out $2 --config scripts/dcspin-phones.yaml --set unit_label_weight=10 \
    --threads 2 "${@:3}"
  $st export $2 --window 960,160,240
}

units_teacher() {  # the subset's teacher: units-w10 for 1600 steps (resumable), written to
  # $M/units-w10-s1600; with TEACHER set, the students distil that one instead and nothing is
  # trained here
  [ -z "${TEACHER:-}" ] || return 0
  units_dcspin units-w10-s1600 $M/units-w10-s1600 --manifest $C/train-1k.jsonl --set steps=1600
}

units_student() {  # units_student NAME DISTILL_ARG...: the teacher's student $M/NAME-stream
  # (run data/runs/distill-NAME), exported as the shipped student
  $st train distill --teacher $teacher --run data/runs/distill-$1 \
    --out $M/$1-stream --threads 2 "${@:2}"
  $st export $M/$1-stream --window 160,320,40 --step-ms 160
}

balanced_subset_teacher() {  # balanced_subset_teacher NAME ARG...: units-balanced's teacher
  # (500 espeak-ng + 500 flite training utterances, 1600 steps) with ARG..., as $M/NAME
  train_subset train-1k-balanced.jsonl 500 espeak flite
  units_dcspin $1 $M/$1 --manifest $C/train-1k-balanced.jsonl --set steps=1600 "${@:2}"
}

balanced_student() {  # balanced_student NAME ARG...: $teacher's student by the default's
  # student recipe (6000 steps on the whole split, engine-balanced crops) with ARG..., as
  # units_student NAME
  units_student $1 --corpus $C --set steps=6000 --set balance_engines=true "${@:2}" \
    ${DISTILL_ARGS:-}
}

for step in $steps; do
  case $step in
    corpus)
      [ -f $C/corpus.json ] || $st corpus synth --out $C --sentences 8000 \
        --parallel-sentences 100 --augment 1 --seed 0 ;;
    subset) train_subset train-1k.jsonl 1000 ;;
    baselines)
      $st train kmeans --corpus $C --K 100 --out $M/mfcc-km100-wide --max-utterances 1500
      $st train kmeans --corpus $C --encoder models/hubert-tiny --K 100 \
        --out $M/hubert-tiny-km100-wide --max-utterances 1500 ;;
    phones) phones_fine_tune "" ;;
    phones-channel)  # (not in the default list) SUPERVISED: phones with half the training
      # crops distorted (phone line, codecs, pink noise at 5-20 dB; validation clean)
      phones_variant channel --set "distortions=[telephone, codec, pink]" \
        --set distort_probability=0.5 --set "snr_db=[5, 20]" ;;
    phones-frontend)  # (not in the default list) SUPERVISED: phones with the base's conv
      # front-end frozen (fairseq's fine-tuning)
      phones_variant frontend --set freeze_frontend=true ;;
    phones-speaker)  # (not in the default list) SUPERVISED: phones with half the training
      # crops given another speaker (Spin's perturbation: formants, pitch, +-12 dB equalizer)
      phones_variant speaker --set perturb_probability=0.5 ;;
    phones-lpc)  # (not in the default list) SUPERVISED: phones with half the training crops
      # LPC-vocoded (pulse or noise excitation, as festival's HTS and diphone voices render)
      phones_variant lpc --set "distortions=[lpc]" --set distort_probability=0.5 ;;
    phones-balanced)  # (not in the default list) SUPERVISED: phones drawing as many flite
      # as espeak-ng crops (balance_engines)
      phones_variant balanced --set balance_engines=true ;;
    it2)  # stop and rerun at will: it resumes from data/runs/hubert-it2/checkpoint.pt
      # HuBERT iteration 2 on the whole training split: targets are k-means of the shipped
      # base's best layer (2 of 4), the encoder starts from the shipped base
      [ -f $M/hubert-tiny-L2-km100-wide/config.json ] || $st train kmeans --corpus $C \
        --encoder models/hubert-tiny --layer 2 --K 100 --out $M/hubert-tiny-L2-km100-wide \
        --max-utterances 1500
      $st train hubert --corpus $C --valid-manifest $C --targets $M/hubert-tiny-L2-km100-wide \
        --init models/hubert-tiny --run data/runs/hubert-it2 --out $M/hubert-it2 --threads 2 \
        ${HUBERT_ARGS:-}
      for layer in 2 3; do
        $st train kmeans --corpus $C --encoder $M/hubert-it2 --layer $layer --K 100 \
          --out $M/hubert-it2-L$layer-km100 --max-utterances 1500
      done
      probe data/probe-wide-it2 $M/mfcc-km100-wide $M/hubert-tiny-L2-km100-wide \
        $M/hubert-it2-L2-km100 $M/hubert-it2-L3-km100 ;;
    probe)
      probe data/probe-wide $M/mfcc-km100-wide $M/hubert-tiny-km100-wide dcspin-tiny-k100 \
        $M/hubert-tiny-phones-km100 ;;
    dcspin)
      for pair in dcspin-phones-kminit:$M/hubert-tiny-phones ${UNSUPERVISED:-}; do
        name=${pair%%:*} base=${pair#*:}
        $st train dcspin --manifest $C/train-1k.jsonl --base $base --run data/runs/$name \
          --out $M/$name --config scripts/dcspin-kminit.yaml --threads 2
      done ;;
    dcspin-phones)  # SUPERVISED: DC-Spin keeping the phone loss, on the phone-fine-tuned base;
      # the same base, utterances, views and seed as dcspin-phones-kminit: the same cache
      share_cache dcspin-phones-kminit dcspin-phones
      $st train dcspin --manifest $C/train-1k.jsonl --base $M/hubert-tiny-phones --phone-labels \
        --run data/runs/dcspin-phones --out $M/dcspin-phones --config scripts/dcspin-phones.yaml \
        --threads 2 ;;
    sweep)  # (not in the default list) SUPERVISED: dcspin-phones with one change each, then
      # k-means on its tuned features and at K = 500, all probed on test side by side
      for run in s05:perturb_strength=0.5 w3:pseudo_weight=3 lr5:lr=5e-5 L1:train_layers=1 \
          K500:K1=500 eps:sinkhorn_eps=0.05; do
        name=sweep-${run%%:*}
        case $run in  # the runs with dcspin-phones' views and frozen layers share its cache
          s05:*|L1:*) ;;
          *) share_cache dcspin-phones-kminit $name ;;
        esac
        $st train dcspin --manifest $C/train-1k.jsonl --base $M/hubert-tiny-phones \
          --phone-labels --run data/runs/$name --out $M/$name \
          --config scripts/dcspin-phones.yaml --set ${run#*:} --threads 2
      done
      $st train kmeans --corpus $C --encoder $M/dcspin-phones --K 100 \
        --out $M/dcspin-phones-feat-km100 --max-utterances 1500
      $st train kmeans --corpus $C --encoder $M/hubert-tiny-phones --K 500 \
        --out $M/hubert-tiny-phones-km500 --max-utterances 1500
      $st probe $(printf -- '--model %s ' $M/hubert-tiny-phones-km100 $M/dcspin-phones \
        $M/dcspin-phones-feat-km100 $M/sweep-s05 $M/sweep-w3 $M/sweep-lr5 $M/sweep-L1 \
        $M/sweep-eps $M/hubert-tiny-phones-km500 $M/sweep-K500) --corpus $C --split test \
        --lm-split dev --full-utterance --out data/probe-sweep-test ;;
    units)  # (not in the default list) SUPERVISED: each run shares dcspin-phones' cache
      for run in w3:3:400 w10:10:400 w10-s800:10:800; do
        IFS=: read -r name weight n <<< "$run"
        share_cache dcspin-phones units-$name
        $st train dcspin --manifest $C/train-1k.jsonl --base $M/hubert-tiny-phones \
          --phone-labels --run data/runs/units-$name --out $M/units-$name \
          --config scripts/dcspin-phones.yaml --set unit_label_weight=$weight --set steps=$n \
          --threads 2
      done
      $st probe $(printf -- '--model %s ' $M/hubert-tiny-phones-km100 $M/dcspin-phones \
        $M/units-w3 $M/units-w10 $M/units-w10-s800) --corpus $C --split test --lm-split dev \
        --full-utterance --out data/probe-units-sweep ;;
    units-stream)  # resumable: data/runs/distill-units-w10-s800
      $st export $M/units-w10-s800 --window 960,160,240  # the shipped teachers' window
      $st train distill --teacher $M/units-w10-s800 --manifest $C/train-1k.jsonl \
        --run data/runs/distill-units-w10-s800 --out $M/units-w10-s800-stream --threads 2
      $st export $M/units-w10-s800-stream --window 160,320,40 --step-ms 160
      probe data/probe-units $M/hubert-tiny-phones-km100 dcspin-phones-k100-stream \
        $M/units-w10-s800 $M/units-w10-s800-stream ;;
    teacher)  # (not in the default list) the subset's teacher alone
      units_teacher ;;
    units-balanced)  # resumable: data/runs/units-w10-s1600-balanced, data/runs/units-w10-s1600
      balanced_subset_teacher units-w10-s1600-balanced
      units_teacher
      probe data/probe-units-balanced $M/hubert-tiny-phones-km100 $teacher \
        $M/units-w10-s1600-balanced ;;
    units-balanced-base)  # resumable: data/runs/units-w10-s1600-balanced-base. units-balanced's
      # teacher (500 espeak-ng + 500 flite utterances, 1600 steps) on the engine-balanced phone
      # base (phones-balanced), probed beside it and k-means on both bases
      phone_base=$M/hubert-tiny-phones-balanced balanced_subset_teacher \
        units-w10-s1600-balanced-base
      probe data/probe-units-balanced-base $M/hubert-tiny-phones-km100 \
        $M/hubert-tiny-phones-balanced-km100 $M/units-w10-s1600-balanced \
        $M/units-w10-s1600-balanced-base ;;
    units-balanced-strong)  # resumable: data/runs/units-w10-s1600-balanced-strong.
      # units-balanced's teacher with its views' speaker perturbation 1.5x as strong
      # (perturb_strength: ratio ranges to the power 1.5), probed beside it and k-means on the base
      balanced_subset_teacher units-w10-s1600-balanced-strong --set perturb_strength=1.5
      probe data/probe-units-balanced-strong $M/hubert-tiny-phones-km100 \
        $M/units-w10-s1600-balanced $M/units-w10-s1600-balanced-strong ;;
    units-balanced-w3)  # resumable: data/runs/units-w3-s1600-balanced. units-balanced's
      # teacher with the label loss through the tokens at weight 3, not 10, on its cache
      share_cache units-w10-s1600-balanced units-w3-s1600-balanced
      balanced_subset_teacher units-w3-s1600-balanced --set unit_label_weight=3
      probe data/probe-units-balanced-w3 $M/hubert-tiny-phones-km100 \
        $M/units-w10-s1600-balanced $M/units-w3-s1600-balanced ;;
    units-balanced-w3-strong)  # resumable: data/runs/units-w3-s1600-balanced-strong.
      # units-balanced-w3's teacher with units-balanced-strong's views (perturbation 1.5x)
      share_cache units-w10-s1600-balanced-strong units-w3-s1600-balanced-strong
      balanced_subset_teacher units-w3-s1600-balanced-strong --set unit_label_weight=3 \
        --set perturb_strength=1.5
      probe data/probe-units-balanced-w3-strong $M/hubert-tiny-phones-km100 \
        $M/units-w10-s1600-balanced $M/units-w3-s1600-balanced \
        $M/units-w3-s1600-balanced-strong ;;
    units-weighted)  # resumable: data/runs/units-w10-s1600-weighted. The subset teacher's
      # recipe on train-1k drawing as many flite as espeak-ng crops (balance_engines), on the
      # subset teacher's frozen-layer cache
      share_cache units-w10-s1600 units-w10-s1600-weighted
      units_dcspin units-w10-s1600-weighted $M/units-w10-s1600-weighted \
        --manifest $C/train-1k.jsonl --set steps=1600 --set balance_engines=true
      units_teacher
      probe data/probe-units-weighted $M/hubert-tiny-phones-km100 $teacher \
        $M/units-w10-s1600-balanced $M/units-w10-s1600-weighted ;;
    units-long)  # resumable: data/runs/units-w10-s1600, data/runs/distill-units-w10-s1600
      units_teacher
      units_student units-w10-s1600 --manifest $C/train-1k.jsonl --phone-labels \
        --set unit_label_weight=3 --set steps=1200
      probe data/probe-units-long $M/hubert-tiny-phones-km100 dcspin-phones-k100-stream \
        $teacher $M/units-w10-s1600-stream ;;
    units-plain)  # resumable: data/runs/distill-units-w10-s1600-plain
      units_teacher
      units_student units-w10-s1600-plain --manifest $C/train-1k.jsonl
      probe data/probe-units-plain $M/hubert-tiny-phones-km100 dcspin-phones-k100-stream \
        $teacher $M/units-w10-s1600-plain-stream ;;
    units-full)  # resumable: data/runs/distill-units-w10-s1600-full
      units_teacher
      units_student units-w10-s1600-full --corpus $C --set steps=3000
      probe data/probe-units-full $M/hubert-tiny-phones-km100 dcspin-phones-k100-stream \
        $M/units-w10-s1600-full-stream ;;
    teacher-full)  # resumable: data/runs/units-w10-full, written to $full
      units_dcspin units-w10-full $full --corpus $C --set steps=3200 ;;
    teacher-full-s6400|teacher-full-s9600)  # resumable: data/runs/units-w10-full-sN.
      # teacher-full's recipe for N steps, not 3200, on its frozen-layer cache (same base,
      # utterances, views and seed), probed beside k-means on the base
      n=${step#teacher-full-s}; out=$M/units-w10-full-s$n
      share_cache units-w10-full units-w10-full-s$n
      units_dcspin units-w10-full-s$n $out --corpus $C --set steps=$n ${TEACHER_ARGS:-}
      probe data/probe-teacher-full-s$n $M/hubert-tiny-phones-km100 $out ;;
    teacher-balanced)  # resumable: data/runs/units-w10-full-balanced. The default teacher's
      # recipe (9600 steps, the whole split) drawing as many flite as espeak-ng crops
      # (balance_engines), on teacher-full's frozen-layer cache, probed beside k-means on the
      # base and the shipped teacher (not when written to $TEACHER_OUT)
      share_cache units-w10-full units-w10-full-balanced
      units_dcspin units-w10-full-balanced $balanced --corpus $C \
        --set steps=9600 --set balance_engines=true ${TEACHER_ARGS:-}
      [ "$balanced" = "${TEACHER_OUT:-}" ] || probe data/probe-teacher-balanced \
        $M/hubert-tiny-phones-km100 models/dcspin-phones-k100 $balanced ;;
    teacher-balanced-w3)  # resumable: data/runs/units-w3-full-balanced. teacher-balanced's
      # recipe with the label loss at weight 3 (units-balanced-w3's lever; TEACHER_ARGS for
      # pieces), on its frozen-layer cache, probed beside k-means on the base and that teacher
      share_cache units-w10-full-balanced units-w3-full-balanced
      units_dcspin units-w3-full-balanced $M/units-w3-full-balanced --corpus $C \
        --set steps=9600 --set balance_engines=true --set unit_label_weight=3 ${TEACHER_ARGS:-}
      probe data/probe-teacher-balanced-w3 $M/hubert-tiny-phones-km100 $balanced \
        $M/units-w3-full-balanced ;;
    teacher-balanced-w3-stream)  # resumable: data/runs/distill-units-w3-full-balanced. The
      # weight-3 teacher's student by the default's student recipe (DISTILL_ARGS for pieces),
      # with the default's student's perturbed copies (its teacher scores are rebuilt)
      share_cache distill-units-w10-full-balanced distill-units-w3-full-balanced
      teacher=$M/units-w3-full-balanced balanced_student units-w3-full-balanced
      probe data/probe-teacher-balanced-w3-stream $M/hubert-tiny-phones-km100 \
        models/dcspin-phones-k100-stream $M/units-w3-full-balanced \
        $M/units-w3-full-balanced-stream ;;
    teacher-balanced-stream)  # resumable: data/runs/distill-units-w10-full-balanced. The
      # balanced teacher's student by the default's student recipe, drawing as many flite as
      # espeak-ng crops as its teacher did, with the default's student's perturbed copies when
      # they are here (its teacher scores are keyed by teacher and rebuilt)
      share_cache distill-units-w10-full-s9600 distill-units-w10-full-balanced
      teacher=$balanced balanced_student units-w10-full-balanced
      probe data/probe-teacher-balanced-stream $M/hubert-tiny-phones-km100 \
        $balanced models/dcspin-phones-k100-stream \
        $M/units-w10-full-balanced-stream ;;
    teacher-balanced-stream-strong)  # (not in the default list) resumable:
      # data/runs/distill-units-w10-full-balanced-strong. teacher-balanced-stream with more
      # and stronger perturbed rows (3 in 4, perturbation 1.5x), for the unseen engine's
      # perturbation agreement; its teacher scores are copied from teacher-balanced-stream's
      share_cache distill-units-w10-full-balanced distill-units-w10-full-balanced-strong
      teacher=$balanced balanced_student units-w10-full-balanced-strong \
        --set perturbed_prob=0.75 --set perturb_strength=1.5
      probe data/probe-teacher-balanced-stream-strong $M/hubert-tiny-phones-km100 \
        $balanced $M/units-w10-full-balanced-stream $M/units-w10-full-balanced-strong-stream ;;
    teacher-full-s6400-stream|teacher-full-s9600-stream)  # resumable:
      # data/runs/distill-units-w10-full-sN. The N-step teacher's student by the default's
      # student recipe (6000 steps), with the 3200-step teacher's student's perturbed copies
      # (its teacher scores are rebuilt: keyed by teacher), probed beside k-means on the base
      # and its teacher
      n=${step#teacher-full-s}; n=${n%-stream}; out=$M/units-w10-full-s$n
      share_cache distill-units-w10-full-s6000 distill-units-w10-full-s$n
      teacher=$out units_student units-w10-full-s$n --corpus $C --set steps=6000 ${DISTILL_ARGS:-}
      probe data/probe-teacher-full-s$n-stream $M/hubert-tiny-phones-km100 $out \
        $M/units-w10-full-s$n-stream ;;
    teacher-full-stream)  # resumable: data/runs/distill-units-w10-full. teacher-full's
      # student by units-full's recipe, with units-full's perturbed copies (same utterances,
      # views and seed; the teacher scores are keyed by teacher and rebuilt), probed beside
      # k-means on the base, the served default and its teacher
      share_cache distill-units-w10-s1600-full distill-units-w10-full
      teacher=$full units_student units-w10-full --corpus $C --set steps=3000
      probe data/probe-teacher-full-stream $M/hubert-tiny-phones-km100 \
        dcspin-phones-k100-stream $full $M/units-w10-full-stream ;;
    teacher-full-s6000-stream)  # resumable: data/runs/distill-units-w10-full-s6000. The same
      # student trained twice as long (6000 steps), with teacher-full-stream's teacher scores and
      # perturbed copies (same teacher, utterances, views and seed), probed beside k-means on the
      # base and the teacher
      share_cache distill-units-w10-full distill-units-w10-full-s6000
      teacher=$full units_student units-w10-full-s6000 --corpus $C --set steps=6000
      probe data/probe-teacher-full-s6000 $M/hubert-tiny-phones-km100 \
        $full $M/units-w10-full-s6000-stream ;;
    units-ctx)  # resumable: data/runs/distill-units-ctx. The subset teacher's student with
      # twice its attention span per layer (8 left / 2 right frames: 33 / 9 frames of context
      # in all, against 17 / 5), probed beside its teacher and the served default
      units_teacher
      units_student units-ctx --manifest $C/train-1k.jsonl --set attention_left=8 \
        --set attention_right=2
      probe data/probe-units-ctx $M/hubert-tiny-phones-km100 $teacher \
        dcspin-phones-k100-stream $M/units-ctx-stream ;;
    units-s3000)  # resumable: data/runs/distill-units-s3000. The subset teacher's student
      # trained twice as long (3000 steps), with units-ctx's teacher scores and perturbed copies
      units_teacher
      share_cache distill-units-ctx distill-units-s3000
      units_student units-s3000 --manifest $C/train-1k.jsonl --set steps=3000
      probe data/probe-units-s3000 $M/hubert-tiny-phones-km100 dcspin-phones-k100-stream \
        $M/units-s3000-stream ;;
    dcspin-probe)
      probe data/probe-wide-dcspin $M/mfcc-km100-wide $M/hubert-tiny-km100-wide \
        $M/hubert-tiny-phones-km100 $M/dcspin-phones-kminit $M/dcspin-phones ;;
    prior)
      [ -f $M/dcspin-kminit/config.json ] || $st train dcspin --manifest $C/train-1k.jsonl \
        --base models/hubert-tiny --run data/runs/dcspin-kminit --out $M/dcspin-kminit \
        --config scripts/dcspin-kminit.yaml --threads 2
      # the same base, utterances, views and seed: the frozen-layer cache is the same
      share_cache dcspin-kminit dcspin-prior
      $st train dcspin --manifest $C/train-1k.jsonl --base models/hubert-tiny \
        --run data/runs/dcspin-prior --out $M/dcspin-prior --config scripts/dcspin-prior.yaml \
        --threads 2
      probe data/probe-wide-prior $M/hubert-tiny-km100-wide $M/dcspin-kminit $M/dcspin-prior ;;
    rspin)  # stop and rerun at will: it resumes from data/runs/rspin-tiny
      $st train rspin --manifest $C/train-1k.jsonl --base hubert-tiny \
        --pseudo-labels dcspin-tiny-k100 --run data/runs/rspin-tiny --out $M/rspin-tiny \
        --config scripts/rspin-tiny.yaml --threads 2 ${RSPIN_ARGS:-}
      $st export $M/rspin-tiny --window 960,160,240 ;;  # the shipped DC-Spin's window
    rspin-stream)  # resumable: data/runs/distill-rspin
      $st train distill --teacher $M/rspin-tiny --manifest $C/train-1k.jsonl \
        --run data/runs/distill-rspin --out $M/rspin-tiny-stream \
        --config scripts/distill-rspin.yaml --threads 2 ${DISTILL_ARGS:-}
      $st export $M/rspin-tiny-stream --window 160,320,40 ;;  # the shipped student's window
    robustness)
      students=""
      if [ -f $M/rspin-tiny-stream/model.onnx ]; then
        students="--model dcspin-tiny-k100-stream --model $M/rspin-tiny-stream"
      fi
      $st probe --model mfcc-km100 --model hubert-tiny-km100 --model dcspin-tiny-k100 \
        --model ${RSPIN:-$M/rspin-tiny} $students --corpus $C --split test --lm-split dev \
        --full-utterance --robustness --out data/probe-robustness
      cp data/probe-robustness/robustness.png docs/robustness.png ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
