#!/usr/bin/env bash
# Neural Statistician retrained with one change each: sets of 1 to 5 items (uniform, per set)
# instead of always 5, and sets of 5 distinct items (--sampler distinct) instead of drawing with
# replacement; otherwise the same run as docs/results/ns.sh (ns-small widened: channels 32, hidden 256, c 128,
# sample dropout 0.1; 20000 steps x 16 sets; lr 1e-3/3e-4/1e-4), then 20-way and 5-way
# classification on the 423 ns28 test classes (1000 tasks; min-KL both directions, cosine).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_set_sizes.sh
# (~60 min of one quiet core per training run, ~1 min per evaluation.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh  # train_run (common.sh), classify
while read -r name sets; do
  run=runs/$name
  # shellcheck disable=SC2086
  train_run ns-small --protocol ns28 --steps 20000 --batch-size 16 \
    $sets --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
    --lr 1e-3,3e-4,1e-4 --val-every 2000 --checkpoint-every 500 --seed 0 --quiet --out "$run"
done <<'RUNS'
ns-medium-var --set-size 1-5
ns-medium-distinct --set-size 5 --sampler distinct
RUNS
classify --checkpoint runs/ns-medium-var/checkpoint.pt --label "ns-medium, sets of 1-5" \
   --out $R/ns-medium-setsize1to5-ns28-classify
classify --checkpoint runs/ns-medium-distinct/checkpoint.pt \
   --label "ns-medium, sets of 5 distinct items" --out $R/ns-medium-distinct-ns28-classify
