#!/usr/bin/env bash
# GMN ablations of the seed talk's table 1 at one reduced, shared budget (CPU, 1 thread each):
# the full GMN (C_train=2, and C_train=1 as a control) and its ablations -- no pseudo-input
# (C_train=2), no attention (C_train=1 and 2) -- each trained for $STEPS steps of 10 episodes
# x 20 items with the paper's three learning-rate phases, then scored on the shared gmn28
# banks (with-replacement sampler, 659 episodes, K=$K importance samples).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ablations.sh
# (STEPS=2000 K=200: ~50 min of one core for training + ~20 min for the five tables.)
# SET=key=value adds a model setting to every row and TAG a suffix to its names, e.g.
# SET=image_read=true TAG=-imgread (the image-read GMN and its ablations). ROWS="name ..." runs
# those rows only; BANK100=1 scores each C_test = 1 row on the shared 100-episode bank at K 1000
# instead (the bank the NLL tables pair on; a C_test = 2 row on the 200-episode C_test = 2 bank),
# and with AIS=1 also by annealed importance sampling (K 8, 100 steps; ~12 min each alone).
# Section 41's 10k-step ablations, paired with models/gmn-small-omniglot.pt (the full GMN: the
# same recipe and seed; docs/results/paired_nll.py FULL-FOLDER ABLATION-FOLDER), one row a job:
#   ROWS=no-pseudo-input-ctrain2 STEPS=10000 BANK100=1 AIS=1 bash docs/results/ablations.sh &
#   ROWS=no-attention-ctrain1 STEPS=10000 BANK100=1 AIS=1 bash docs/results/ablations.sh
#   ROWS=no-attention-ctrain2 STEPS=10000 BANK100=1 bash docs/results/ablations.sh
#   (~25 min of one core each for training beside another job, ~5-10 min for the bank), and the
#   full GMN's AIS and C_test = 2 table with per-episode values to pair with (its older folders
#   have none):
#   ROWS=none BANK100=1 AIS=1 FULL=models/gmn-small-omniglot.pt bash docs/results/ablations.sh
# CLASSIFY=1 scores table 2 instead (with BANK100 as well) for each row (1000 seeded tasks per
# cell, 5/20-way, 1/5-shot, likelihood at K 10 and cosine; 30-40 min of one core each)
# and, with FULL, for the full GMN again (its older folder has no per-task counts to pair with):
#   ROWS=no-attention-ctrain1 STEPS=10000 CLASSIFY=1 bash docs/results/ablations.sh
#   ROWS=none CLASSIFY=1 FULL=models/gmn-small-omniglot.pt bash docs/results/ablations.sh
#   then ppl-fewshot compare $R/gmn-small-gmn28-classify-tasks $R/ablation-...-classify
# The row gmn-ctrain1 is the full GMN trained on C_train = 1 episodes (not in the paper's table):
# beside no-attention-ctrain1 and -ctrain2 it separates attention from the episodes' classes.
#   ROWS=gmn-ctrain1 STEPS=10000 CLASSIFY=1 BANK100=1 bash docs/results/ablations.sh
#   (the image-read one, section 44: add SET=image_read=true TAG=-imgread WAYS=5; WAYS=20 for
#   its 20-way cells, section 46, about an hour of one core)
# no-attention-ctrain2 has a second row at C_test = 1 (the same training run), the cell of the
# 2x2 (attention x C_train) at C_test = 1; with BANK100 it is scored on the 100-episode bank.
# SEED=N trains with seed N instead of 0 (names gain -seedN): the spread between training seeds,
# e.g. the full GMN again beside models/gmn-small-omniglot.pt (seed 0), and the no-attention
# model of the paper's comparison (table 2 and the bank; ~30 + 35 + 7 min of one core each):
#   ROWS="gmn-ctrain2 no-attention-ctrain1" SEED=1 STEPS=10000 CLASSIFY=1 BANK100=1 \
#     bash docs/results/ablations.sh
#   and the other two cells of the two-by-two (section 45), one row a job:
#   ROWS=gmn-ctrain1 SEED=1 STEPS=10000 CLASSIFY=1 BANK100=1 bash docs/results/ablations.sh &
#   ROWS=no-attention-ctrain2 SEED=1 STEPS=10000 CLASSIFY=1 BANK100=1 bash docs/results/ablations.sh
# CTEST=N runs the rows scored at C_test N only (no-attention-ctrain2 has one of each), e.g. the
# image-read two-by-two at seed 1 (section 47), one row a job, four jobs at once:
#   ROWS=gmn-ctrain1 SET=image_read=true TAG=-imgread SEED=1 CTEST=1 STEPS=10000 CLASSIFY=1 \
#     WAYS=5 BANK100=1 bash docs/results/ablations.sh   (and gmn-ctrain2, no-attention-ctrain1/2)
# ARGS="--flag value ..." adds training flags to every row (name it with TAG), e.g. the
# image-read GMN on one-character episodes with more weight on its 0-shot terms (section 48):
#   ROWS=gmn-ctrain1 SET=image_read=true TAG=-imgread-pw2 ARGS="--position-weights 2,1" \
#     CTEST=1 STEPS=10000 CLASSIFY=1 WAYS=5 BANK100=1 bash docs/results/ablations.sh
#   (also TAG=-imgread-pw20 ARGS="--position-weights 20,1" and TAG=-imgread-single1
#   ARGS="--singleton-weight 1", 1.46x a step; one job each, three at once)
# WAYS=5 scores table 2 at 5-way only (names gain -5way; the image-read 20-way cells take ~1 h).
# FULL's outputs carry TAG too: the image-read zoo GMN's table 2 with per-task counts, e.g.
#   ROWS=none CLASSIFY=1 WAYS=20 TAG=-imgread FULL=models/gmn-small-imgread-omniglot.pt \
#     bash docs/results/ablations.sh   (section 46; its 5-way cells with WAYS=5)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-2000}
ROWS=${ROWS:-}
BANK100=${BANK100:-}
AIS=${AIS:-}
CLASSIFY=${CLASSIFY:-}
K=${K:-200}
SET=${SET:-}
ARGS=${ARGS:-}
TAG=${TAG:-}
SEED=${SEED:-0}
CTEST=${CTEST:-}
WAYS=${WAYS:-5,20}
SUF=$TAG-s$STEPS
LAB="$TAG, $STEPS steps"  # the rows' labels: name, tag, steps, seed
[ "$SEED" = 0 ] || { SUF=$SUF-seed$SEED; LAB="$LAB, seed $SEED"; }
WSUF=
[ "$WAYS" = 5,20 ] || WSUF=-${WAYS//,/-}way
R=docs/results
W=runs/ablations
mkdir -p "$W"
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
FLAB="gmn-small$TAG 10k steps (the ablations' full GMN)"  # FULL's label and names carry TAG
if [ -n "${FULL:-}" ] && [ -n "$AIS" ]; then
  bank_nll "$FULL" 8 "$FLAB, AIS" $R/gmn-small$TAG-gmn28-C1-AIS100-K8-100ep-episodes --ais-steps 100
  ev --checkpoint "$FULL" --task nll --classes 2 --episodes 200 --samples 1000 --khat-episodes 0 \
    --label "$FLAB" --out $R/gmn-small$TAG-gmn28-C2-K1000-200ep-episodes
fi
table2() {  # CHECKPOINT LABEL OUT
  ev --checkpoint "$1" --label "$2" --task classify --protocol gmn28 --ways "$WAYS" --k-shots 1,5 \
    --tasks 1000 --classify-samples 10 --methods likelihood,cosine --out "$3"
}
if [ -n "${FULL:-}" ] && [ -n "$CLASSIFY" ]; then
  table2 "$FULL" "$FLAB" $R/gmn-small$TAG-gmn28-classify-tasks$WSUF
fi
# name  C_train  C_test  settings
while read -r name ctrain ctest settings; do
  [ -z "$ROWS" ] || [[ " $ROWS " == *" $name "* ]] || continue
  [ -z "$CTEST" ] || [ "$CTEST" = "$ctest" ] || continue
  run=$W/$name$SUF
  # shellcheck disable=SC2086
  train_run gmn-small --protocol gmn28 --steps "$STEPS" --batch-size 10 \
    --set-size 20 --classes "$ctrain" --lr 1e-3,3e-4,1e-4 --val-every 500 \
    --checkpoint-every 250 --seed "$SEED" --quiet $settings ${SET:+--set "$SET"} $ARGS --out "$run"
  if [ -n "$CLASSIFY" ]; then  # table 2 only (with BANK100 also its NLL tables)
    table2 "$run/checkpoint.pt" "gmn-small ablation $name$LAB" \
      $R/ablation-$name$SUF-classify$WSUF
    [ -n "$BANK100" ] || continue
  fi
  if [ -n "$BANK100" ]; then
    if [ "$ctest" = 1 ]; then
      bank_nll "$run/checkpoint.pt" 1000 "gmn-small ablation $name$LAB" \
        $R/ablation-$name$SUF-C1-K1000-100ep
      [ -z "$AIS" ] || bank_nll "$run/checkpoint.pt" 8 "gmn-small ablation $name$LAB, AIS" \
        $R/ablation-$name$SUF-C1-AIS100-K8-100ep --ais-steps 100
    else  # the C_test = 2 bank of the zoo tables (200 episodes)
      ev --checkpoint "$run/checkpoint.pt" --task nll --classes "$ctest" --episodes 200 \
        --samples 1000 --khat-episodes 0 --label "gmn-small ablation $name$LAB" \
        --out $R/ablation-$name$SUF-C$ctest-K1000-200ep
    fi
    continue
  fi
  out=$R/ablation-$name$SUF-C$ctest-K$K
  [ -d "$out" ] || ppl-fewshot --threads 1 evaluate --checkpoint "$run/checkpoint.pt" --task nll \
      --protocol gmn28 --classes "$ctest" --sampler with-replacement --samples "$K" --out "$out"
done <<'TABLE'
gmn-ctrain2 2 1
gmn-ctrain1 1 1
no-pseudo-input-ctrain2 2 1 --set pseudo_input=false
no-attention-ctrain1 1 1 --set attention="average"
no-attention-ctrain2 2 2 --set attention="average"
no-attention-ctrain2 2 1 --set attention="average"
TABLE
