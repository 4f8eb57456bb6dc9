#!/usr/bin/env bash
# Generalization gaps (docs/findings.md section 22): the zoo's checkpoints scored on the classes
# they trained on (`evaluate --split train`), on the training classes they held out (`--split
# val`: new characters of the training alphabets) and on the test classes, one CPU thread each.
#   ns-medium: 5/20-way 1/5-shot min-KL and cosine classification on its upright ns28 training
#     characters (1000 tasks), beside docs/results/ns-medium-ns28-classify;
#   gmn-small: the conditional NLL table (C_test 1, with-replacement, 100 episodes, K 1000) on
#     train and val, beside docs/results/gmn-small-gmn28-C1-K1000-100ep, and the three put side
#     by side with the exact pixel model as a yardstick of each episode's difficulty
#     (generalization_gap.py).
# Each step is skipped when its output holds a result. The evaluations take ~40 min on 2 quiet
# cores, the five trainings below ~4 h on one thread each.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/generalization.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
ev --checkpoint models/ns-medium-omniglot.pt --split train --task classify --ways 5,20 \
   --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine \
   --out $R/ns-medium-train-ns28-classify
ev --model pixel-beta-bernoulli --split train --protocol gmn28 --classes 1 --episodes 100 \
   --out $R/pixel-train-gmn28-with-replacement-100ep
for s in train val; do
  ev --checkpoint models/gmn-small-omniglot.pt --split $s --task nll --classes 1 --episodes 100 \
     --samples 1000 --khat-episodes 0 --out $R/gmn-small-$s-gmn28-C1-K1000-100ep
done
ev --checkpoint models/gmn-small-omniglot.pt --task nll --classes 1 --episodes 100 \
   --samples 1000 --out $R/gmn-small-gmn28-C1-K1000-100ep
[ -f $R/generalization-gap/gmn-small.json ] || python $R/generalization_gap.py \
  $R/generalization-gap/gmn-small.json $R/pixel-train-gmn28-with-replacement-100ep/pixel-beta-bernoulli.pt \
  $R/gmn-small-{train,val}-gmn28-C1-K1000-100ep $R/gmn-small-gmn28-C1-K1000-100ep
# The vae of section 19 (runs/vae-s6000, trained by vae_budget.sh) on the same three banks.
[ -f runs/vae-s6000/summary.json ] || STEPS=6000 bash $R/vae_budget.sh
for s in test train val; do
  sfx=""; [ $s = test ] || sfx=-$s
  ev --checkpoint runs/vae-s6000/checkpoint.pt --split $s --task nll --classes 1 --episodes 100 \
     --samples 1000 --shots 0,1,19 --khat-episodes 0 --label "vae, 6000 steps" \
     --out $R/vae-s6000$sfx-gmn28-C1-K1000-100ep
done
[ -f $R/generalization-gap/vae-s6000.json ] || python $R/generalization_gap.py \
  $R/generalization-gap/vae-s6000.json $R/pixel-train-gmn28-with-replacement-100ep/pixel-beta-bernoulli.pt \
  $R/vae-s6000-{train,val}-gmn28-C1-K1000-100ep $R/vae-s6000-gmn28-C1-K1000-100ep
# Against memorization (section 22): gmn-small as models/gmn-small-omniglot.pt (C_train 2, 10k
# steps) and as models/gmn-small-mixture-ctrain1-omniglot.pt (mixture prior, C_train 1), retrained
# with every training class also turned by 90/180/270 degrees and mirrored as new classes
# (--augmentation rot90,flip; 7712 classes), or with decoupled weight decay; the augmented
# gmn-small continued for 10k more steps; each scored on the same banks as the originals.
train_gmn() { local run=$1; shift  # train_gmn RUN ARGS...: gmn-small, 10k steps, ARGS added
  train_run gmn-small --protocol gmn28 \
    --steps 10000 --batch-size 10 --set-size 20 --val-every 1000 --checkpoint-every 500 \
    --quiet "$@" --out "$run"; }
ev_gap() { local run=$1 out=$R/$2 label=$3
  ev --checkpoint $run/checkpoint.pt --task nll --classes 1 --episodes 100 --samples 1000 \
     --khat-episodes 0 --label "$label" --out $out-gmn28-C1-K1000-100ep
  ev --checkpoint $run/checkpoint.pt --split train --task nll --classes 1 --episodes 100 \
     --samples 1000 --khat-episodes 0 --label "$label" --out $out-train-gmn28-C1-K1000-100ep
  [ -f $R/generalization-gap/$2.json ] || python $R/generalization_gap.py \
    $R/generalization-gap/$2.json $R/pixel-train-gmn28-with-replacement-100ep/pixel-beta-bernoulli.pt \
    $out-train-gmn28-C1-K1000-100ep $out-gmn28-C1-K1000-100ep; }
S="--lr 1e-3,3e-4,1e-4 --seed 0"
train_gmn runs/gmn-small-rotflip --classes 2 $S --augmentation rot90,flip
train_gmn runs/gmn-mixture-ctrain1-rotflip --classes 1 $S --set prior=mixture --augmentation rot90,flip
train_gmn runs/gmn-small-wd0.3 --classes 2 $S --weight-decay 0.3
train_gmn runs/gmn-small-rotflip-cont --classes 2 --lr 3e-4,1e-4 --seed 1 --augmentation rot90,flip \
  --init-from runs/gmn-small-rotflip/checkpoint.pt
ev_gap runs/gmn-small-rotflip gmn-small-rotflip "gmn-small, rot90/flip classes"
ev_gap runs/gmn-mixture-ctrain1-rotflip gmn-small-mixture-ctrain1-rotflip \
  "gmn-small mixture prior C_train 1, rot90/flip classes"
ev_gap runs/gmn-small-wd0.3 gmn-small-wd0.3 "gmn-small, weight decay 0.3"
ev_gap runs/gmn-small-rotflip-cont gmn-small-rotflip-cont "gmn-small, rot90/flip classes, +10k steps"
# the augmented mixture model +10k (20k steps; more_steps.sh continues it to the zoo's 40k file)
train_gmn runs/gmn-mixture-ctrain1-rotflip-cont --classes 1 --lr 3e-4,1e-4 --seed 1 --set prior=mixture \
  --augmentation rot90,flip --init-from runs/gmn-mixture-ctrain1-rotflip/checkpoint.pt
ev --checkpoint runs/gmn-mixture-ctrain1-rotflip-cont/checkpoint.pt --task nll --classes 1 \
   --episodes 100 --samples 1000 --khat-episodes 0 \
   --label "gmn-small mixture prior C_train 1, rot90/flip classes, +10k steps" \
   --out $R/gmn-small-mixture-ctrain1-rotflip-cont-gmn28-C1-K1000-100ep
