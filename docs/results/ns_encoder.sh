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
# directions, cosine) and Omniglot -> MNIST, binarized and grey test inputs (ev_all).
# Checkpoints of steps 2000, 4000, ... are copied to $run/snaps.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_encoder.sh
# (~1.8 h beside other jobs on the 2 cores; the wall time is in classify.json's budget.)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
train runs/ns-enc/depth3 --set c_dim=128 --set encoder_depth=3 --seed 0
ev_all runs/ns-enc/depth3/checkpoint.pt "ns-medium, encoder depth 3" ns-medium-depth3
# Learning curves (20-way 1-shot, both KL directions) of the snapshots:
# for s in runs/ns-enc/*/snaps/*.pt; do r=$(basename "$(dirname "$(dirname "$s")")")
#   ppl-fewshot --threads 1 evaluate --checkpoint "$s" --task classify --protocol ns28 --ways 20 \
#     --k-shots 1 --tasks 1000 --methods min-kl,min-kl-reverse --out "runs/ns-enc/ev/$r-$(basename "$s" .pt)"
# done   (each classify.json names its checkpoint's step under training_budget)
