#!/usr/bin/env bash
# Neural Statistician retrained with one change each against docs/results/ns.sh (ns-small widened:
# channels 32, hidden 256, c 128, sample dropout 0.1; 20000 steps x 16 sets of 5; lr 1e-3/3e-4/1e-4):
#   ns-medium-klwarm: KL warm-up, the KL weight rising linearly from 0 to 1 over the first 7200
#                     steps (3 passes over ns28's augmented training sets); the public
#                     re-implementation weights its reconstruction term up early instead;
#   ns-medium-c512:   c of 512 units, the paper's size;
#   ns-medium-control: no change (ns.sh's run again, with snapshots every 2000 steps);
#   ns-medium-seed1:   no change but the seed (1): how far two runs of one recipe differ.
# then 20-way and 5-way classification on the 423 ns28 test classes (1000 tasks; min-KL both
# directions, cosine). Checkpoints of steps 2000, 4000, ... are copied to $run/snaps while it trains.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_recipe.sh
# (~57 min of one quiet core per training run; the four ran side by side on 2 cores; ~2 min per
# evaluation.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
train runs/ns-exp/klwarm --set c_dim=128 --kl-anneal 7200 --seed 0 &
train runs/ns-exp/c512 --set c_dim=512 --seed 0 &
train runs/ns-exp/control --set c_dim=128 --seed 0 &
train runs/ns-exp/seed1 --set c_dim=128 --seed 1 &
wait
classify --checkpoint runs/ns-exp/klwarm/checkpoint.pt --label "ns-medium, KL warm-up 7200 steps" \
         --out $R/ns-medium-klwarm-ns28-classify
classify --checkpoint runs/ns-exp/c512/checkpoint.pt --label "ns-medium, c 512" \
         --out $R/ns-medium-c512-ns28-classify
classify --checkpoint runs/ns-exp/seed1/checkpoint.pt --label "ns-medium, seed 1" \
         --out $R/ns-medium-seed1-ns28-classify
classify --checkpoint runs/ns-exp/control/checkpoint.pt --label "ns-medium, control rerun" \
         --out $R/ns-medium-control-ns28-classify
# Learning curves (20-way 1-shot, both KL directions) of the snapshots:
# for s in runs/ns-exp/*/snaps/*.pt; do r=$(basename "$(dirname "$(dirname "$s")")")
#   ppl-fewshot --threads 1 evaluate --checkpoint "$s" --task classify --protocol ns28 --ways 20 \
#     --k-shots 1 --tasks 1000 --methods min-kl,min-kl-reverse --out "runs/ns-exp/ev/$r-$(basename "$s" .pt)"
# done   (each classify.json names its checkpoint's step under training_budget)
