#!/usr/bin/env bash
# GMN with more training: gmn-small continued from models/gmn-small-omniglot.pt (10k steps) with a
# fresh Adam and the schedule 3e-4 then 1e-4 (equal halves of STEPS), same episodes as before
# (10 x 20 items, C_train = 2, with-replacement sampler), seed 1; then the gmn28 NLL table
# (C_test = 1, 659 episodes, K = 1000) and the AIS check of docs/results/ais.sh.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/gmn_continue.sh
# (STEPS=40000 default: ~90 min of one quiet core; a shorter STEPS gives the shorter schedule.)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-40000}
R=docs/results
run=runs/gmn-small-cont
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
train_run gmn-small --protocol gmn28 --steps "$STEPS" --batch-size 10 \
  --set-size 20 --classes 2 --lr 3e-4,1e-4 --val-every 2000 --checkpoint-every 500 --seed 1 \
  --init-from models/gmn-small-omniglot.pt --quiet --out "$run"
step=$(python -c "import torch; print(torch.load('$run/checkpoint.pt', weights_only=False)['step'])")
total=$((10000 + step))
out=$R/gmn-small-cont-gmn28-C1-K1000
ev --checkpoint $run/checkpoint.pt --task nll --protocol gmn28 --classes 1 --samples 1000 \
  --label "gmn-small ${total} steps" --out $out
bash $R/ais.sh $run/checkpoint.pt gmn-small-cont "gmn-small ${total} steps"
