#!/usr/bin/env bash
# Neural Statistician: does the recipe's optional dilation augmentation change min-KL
# classification, on Omniglot and on Omniglot -> MNIST? One change against ns-medium-depth3
# (docs/results/ns_encoder.sh: ns-medium with three convolutions per resolution; 20000 steps
# x 16 sets of 5; lr 1e-3/3e-4/1e-4; seed 0):
#   ns-medium-depth3-dilate: `--augmentation rot90,flip,dilate`, each of the 8 rotated and
#                            flipped copies of a training class also as a class with strokes
#                            one pixel wider (2 x 2 maximum filter; 19200 classes instead of
#                            9600). MNIST's strokes are about that much wider (findings 16).
# then 20-way and 5-way classification on the 423 ns28 test classes (1000 tasks; min-KL both
# directions, cosine) and Omniglot -> MNIST, binarized and grey test inputs (ev_all), all on
# undilated test drawings. Checkpoints of steps 2000, 4000, ... are copied to $run/snaps
# (learning curve: see ns_encoder.sh).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_dilation.sh   (~2.3 h on one thread
# beside another job). The run of 2026-12-04 was stopped for time after the snapshot of step
# 14000 (lr 1e-4 phase); that snapshot was evaluated by hand with
#   ev_all SNAP "ns-medium, encoder depth 3, dilation augmentation, step 14000 of 20000" \
#          ns-medium-depth3-dilate-s14k                            (docs/findings.md section 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
run=runs/ns-dilate/depth3
train $run --set c_dim=128 --set encoder_depth=3 --augmentation rot90,flip,dilate --seed 0
ev_all $run/checkpoint.pt "ns-medium, encoder depth 3, dilation augmentation" ns-medium-depth3-dilate
