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
# Each step is skipped when its output holds a result. ~25 min on 2 quiet cores.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/generalization.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
ev() { local out="${*: -1}"; compgen -G "$out/*.json" > /dev/null || ppl-fewshot --threads 1 \
       evaluate "$@"; }
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
# Class augmentation against memorization (section 22): gmn-small as models/gmn-small-omniglot.pt
# (C_train 2, 10k steps) and as models/gmn-small-mixture-ctrain1-omniglot.pt (mixture prior,
# C_train 1), each retrained with every training class also turned by 90/180/270 degrees and
# mirrored as new classes (--augmentation rot90,flip; 7712 classes), scored on the same banks.
train_aug() { local run=$1; shift
  [ -f "$run/summary.json" ] || ppl-fewshot --threads 1 train gmn-small --protocol gmn28 \
    --steps 10000 --batch-size 10 --set-size 20 --lr 1e-3,3e-4,1e-4 --val-every 1000 \
    --checkpoint-every 500 --seed 0 --augmentation rot90,flip --quiet --out "$run" "$@" \
    $( [ -f "$run/checkpoint.pt" ] && echo --resume ) < /dev/null; }
train_aug runs/gmn-small-rotflip --classes 2
train_aug runs/gmn-mixture-ctrain1-rotflip --classes 1 --set prior=mixture
ev_aug() { local run=$1 out=$R/$2 label=$3
  ev --checkpoint $run/checkpoint.pt --task nll --classes 1 --episodes 100 --samples 1000 \
     --khat-episodes 0 --label "$label" --out $out-gmn28-C1-K1000-100ep
  ev --checkpoint $run/checkpoint.pt --split train --task nll --classes 1 --episodes 100 \
     --samples 1000 --khat-episodes 0 --label "$label" --out $out-train-gmn28-C1-K1000-100ep
  [ -f $R/generalization-gap/$2.json ] || python $R/generalization_gap.py \
    $R/generalization-gap/$2.json $R/pixel-train-gmn28-with-replacement-100ep/pixel-beta-bernoulli.pt \
    $out-train-gmn28-C1-K1000-100ep $out-gmn28-C1-K1000-100ep; }
ev_aug runs/gmn-small-rotflip gmn-small-rotflip "gmn-small, rot90/flip classes"
ev_aug runs/gmn-mixture-ctrain1-rotflip gmn-small-mixture-ctrain1-rotflip \
  "gmn-small mixture prior C_train 1, rot90/flip classes"
