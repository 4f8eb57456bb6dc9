#!/usr/bin/env bash
# Baselines of the seed talk's table 1, trained on gmn28 (episodes of 20 items from one class,
# batches of 10, Adam 1e-3/3e-4/1e-4, $STEPS steps, 1 CPU thread) and scored on the shared gmn28
# bank (C_test=1, with-replacement, 659 episodes, K=$K):
#   vae-small   -- ignores the context (the "VAE" row: 0 shots)
#   cvae-small  -- one-shot conditional VAE: each item conditioned on the episode's first item
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/baselines.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-3000}
K=${K:-1000}
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
for model in cvae-small vae-small; do
  run=runs/$model-s$STEPS
  train_run $model --protocol gmn28 --steps "$STEPS" --batch-size 10 \
    --set-size 20 --classes 1 --lr 1e-3,3e-4,1e-4 --val-every 500 --checkpoint-every 250 \
    --seed 0 --quiet --out "$run"
  out=docs/results/$model-s$STEPS-gmn28-C1-K$K
  ev --checkpoint "$run/checkpoint.pt" --task nll --protocol gmn28 --classes 1 \
     --sampler with-replacement --samples "$K" --out "$out"
done
