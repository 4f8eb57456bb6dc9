#!/usr/bin/env bash
# Does more training budget close the Neural Statistician's classification gap (issue #4)?
# Continues models/ns-medium-omniglot.pt (20k steps) for STEPS more steps at the last phase's
# learning rate (1e-4), same model, batches and protocol, fresh optimizer, other episodes
# (seed 1), then scores min-KL (both directions) and cosine classification on 1000 seeded ns28
# tasks, as docs/results/ns.sh does for the 20k-step model. docs/findings.md section 2.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_continue.sh
# (12000 steps: ~30-45 min on one core; evaluation ~5 min.)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-12000}
R=docs/results
run=runs/ns-medium-cont$((STEPS / 1000))k
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
train_run ns-small --protocol ns28 --steps "$STEPS" --batch-size 16 \
  --set-size 5 --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
  --lr 1e-4 --val-every 2000 --checkpoint-every 500 --seed 1 --quiet \
  --init-from models/ns-medium-omniglot.pt --out "$run"
ev --checkpoint "$run/checkpoint.pt" --task classify --protocol ns28 --ways 5,20 --k-shots 1,5 \
   --tasks 1000 --methods min-kl,min-kl-reverse,cosine \
   --label "ns-medium, 20k + $((STEPS / 1000))k steps" \
   --out $R/ns-medium-cont$((STEPS / 1000))k-ns28-classify
