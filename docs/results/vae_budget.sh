#!/usr/bin/env bash
# The VAE baseline at the paper's layer sizes (`vae`: z 32, conv channels 32, 256-unit features;
# the same ConvEncoder / ConvDecoder as gmn), trained on gmn28 like baselines.sh (episodes of 20
# items from one class, batches of 10, Adam 1e-3/3e-4/1e-4 over $STEPS steps, 1 CPU thread), and
# scored on the shared gmn28 bank (C_test=1, with-replacement, 659 episodes, K=1000) at 0, 1 and
# 19 shots (a context-free model: the three columns agree up to noise). How far is the 0-shot gap
# of GMN to the paper (~20 nats) a gap of the shared networks and the budget? (findings 19)
# Usage: STEPS=3000 PPL_FEWSHOT_DATA=../shared/data bash docs/results/vae_budget.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-3000}
run=runs/vae-s$STEPS
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
train_run vae --protocol gmn28 --steps "$STEPS" --batch-size 10 \
  --set-size 20 --classes 1 --lr 1e-3,3e-4,1e-4 --val-every 500 --checkpoint-every 500 \
  --seed 0 --quiet --out "$run"
out=docs/results/vae-s$STEPS-gmn28-C1-K1000
ev --checkpoint "$run/checkpoint.pt" --task nll --protocol gmn28 --classes 1 \
   --sampler with-replacement --samples 1000 --shots 0,1,19 --khat-episodes 0 \
   --label "vae, $STEPS steps" --out "$out"
