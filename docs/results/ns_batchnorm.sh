#!/usr/bin/env bash
# Neural Statistician: does batch normalization, as the paper uses in every layer, change
# min-KL classification? One change against ns-medium-depth3 (docs/results/ns_encoder.sh:
# ns-medium with three convolutions per resolution; 20000 steps x 16 sets of 5; lr
# 1e-3/3e-4/1e-4; seed 0):
#   ns-medium-depth3-bn: `--set norm=batch`, batch normalization before every hidden
#                        activation of every network (training: statistics of the batch;
#                        evaluation: running averages, so test sets are scored independently).
# then 20-way and 5-way classification on the 423 ns28 test classes (1000 tasks; min-KL both
# directions, cosine), binarized and grey test inputs, and Omniglot -> MNIST. Checkpoints of
# steps 2000, 4000, ... are copied to $run/snaps (learning curve: see ns_encoder.sh).
# Then the same ns28 classification with each task's own batch statistics (--norm-stats task:
# a task's support sets normalized together, its queries together; transductive), as code that
# evaluates a batch-norm network in training mode would score it (findings 18).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_batchnorm.sh   (~2 h on one thread)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
run=runs/ns-bn/depth3
train $run --set c_dim=128 --set encoder_depth=3 --set norm=batch --seed 0
ev_all $run/checkpoint.pt "ns-medium, encoder depth 3, batch norm" ns-medium-depth3-bn
classify --checkpoint $run/checkpoint.pt --norm-stats task \
   --label "ns-medium, encoder depth 3, batch norm, each task's batch statistics" \
   --out docs/results/ns-medium-depth3-bn-taskstats-ns28-classify
