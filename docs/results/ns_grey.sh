#!/usr/bin/env bash
# Neural Statistician: how much of the min-KL gap is binarization noise?
# Two one-change retrainings against ns-medium and its depth-3 encoder variant (ns_common.sh:
# ns-small widened to channels 32, hidden 256, sample dropout 0.1; 20000 steps x 16 sets of 5;
# lr 1e-3/3e-4/1e-4; seed 0), each with `--binarization none`: the model reads and scores grey
# levels p (ink probabilities) instead of one Bernoulli draw x ~ p per item. The Bernoulli
# term sum p log theta + (1 - p) log(1 - theta) equals E_x[log p(x | z)], so the objective is the
# ELBO averaged over dynamic binarizations with the guide reading p (a bound on E_x[log p(x)]).
#   ns-grey:          ns-medium with grey levels;
#   ns-grey-depth3:   ns-medium with encoder_depth 3 (docs/results/ns_encoder.sh) and grey levels.
# Then 5- and 20-way classification on the 423 ns28 test classes (1000 tasks; min-KL in both
# directions, cosine), with the protocol's test inputs (one seeded Bernoulli draw) and with
# grey-level test inputs (`evaluate --binarization none`).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_grey.sh
# (two trainings side by side on the 2 cores; wall times in each classify.json's budget.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
train runs/ns-grey/medium --set c_dim=128 --binarization none --seed 0 &
train runs/ns-grey/depth3 --set c_dim=128 --set encoder_depth=3 --binarization none --seed 0 &
wait
for r in medium depth3; do
  if [ $r = medium ]; then label="ns-medium"; else label="ns-medium, encoder depth 3"; fi
  label="$label, trained on grey levels"
  classify --checkpoint runs/ns-grey/$r/checkpoint.pt --label "$label" \
     --out $R/ns-grey-$r-ns28-classify
  classify --checkpoint runs/ns-grey/$r/checkpoint.pt --label "$label, grey test inputs" \
     --binarization none --out $R/ns-grey-$r-ns28-classify-grey
done
