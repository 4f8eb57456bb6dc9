#!/usr/bin/env bash
# Neural Statistician: is the shared conv encoder what holds min-KL classification back?
# Against ns-medium (docs/results/ns.sh: ns-small widened to channels 32, hidden 256, c 128,
# sample dropout 0.1; 20000 steps x 16 sets of 5; lr 1e-3/3e-4/1e-4; seed 0):
#   ns-medium-depth3:    three convolutions per resolution in the shared encoder (the paper's
#                        Omniglot encoder has three; ns-medium has one), nothing else changed;
# (A second run, "paper-like": depth 3, hidden 1000, c 512 and a scale floor min_scale=0.0067,
# was started beside it and stopped after 900 steps: at ~2.1 steps/s it needed 2.7 h, and it
# still had a loss spike of 6.7e6 nats/item at the floor; docs/findings.md section 2.)
# then 20-way and 5-way classification on the 423 ns28 test classes (1000 tasks; min-KL both
# directions, cosine). Checkpoints of steps 2000, 4000, ... are copied to $run/snaps.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_encoder.sh
# (~1.8 h beside other jobs on the 2 cores; the wall time is in classify.json's budget.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
train runs/ns-enc/depth3 --set c_dim=128 --set encoder_depth=3 --seed 0
ev --checkpoint runs/ns-enc/depth3/checkpoint.pt --label "ns-medium, encoder depth 3" \
   --out $R/ns-medium-depth3-ns28-classify
ev --checkpoint runs/ns-enc/depth3/checkpoint.pt --binarization none \
   --label "ns-medium, encoder depth 3, grey test inputs" --out $R/ns-medium-depth3-ns28-classify-grey
# Learning curves (20-way 1-shot, both KL directions) of the snapshots:
# for s in runs/ns-enc/*/snaps/*.pt; do r=$(basename "$(dirname "$(dirname "$s")")")
#   ppl-fewshot --threads 1 evaluate --checkpoint "$s" --task classify --protocol ns28 --ways 20 \
#     --k-shots 1 --tasks 1000 --methods min-kl,min-kl-reverse --out "runs/ns-enc/ev/$r-$(basename "$s" .pt)"
# done   (each classify.json names its checkpoint's step under training_budget)
# Omniglot -> MNIST on the official test digits, binarized and grey (findings section 14)
# (ev's --protocol / --ways / --k-shots defaults are overridden by the later flags)
for b in dynamic none; do
  if [ $b = none ]; then sfx=-grey lab=", grey test inputs"; else sfx="" lab=""; fi
  ev --checkpoint runs/ns-enc/depth3/checkpoint.pt --protocol mnist28-t10k --ways 10 \
     --binarization $b --label "ns-medium, encoder depth 3$lab" \
     --out $R/ns-medium-depth3-mnist28-t10k$sfx
done
