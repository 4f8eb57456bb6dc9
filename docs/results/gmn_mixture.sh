#!/usr/bin/env bash
# GMN with the mixture prior (prior=mixture: one Normal per memory item, weighted by the prior's
# last attention) against models/gmn-small-omniglot.pt, retrained with that one change (same
# command, seed and budget as that card: 10000 steps x 10 episodes of 20 items from 2 classes),
# then: the sample judge (docs/results/sample_fidelity.py) on both, and the conditional NLL table
# (gmn28, C_test = 1, K = 1000, 100 episodes) of the new model.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/gmn_mixture.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
run=runs/gmn-mixture
[ -f $run/summary.json ] || ppl-fewshot --threads 1 train gmn-small --protocol gmn28 --steps 10000 \
  --batch-size 10 --set-size 20 --classes 2 --lr 1e-3,3e-4,1e-4 --val-every 1000 \
  --checkpoint-every 500 --seed 0 --out $run --set prior=mixture --quiet \
  $( [ -f $run/checkpoint.pt ] && echo --resume )
python $R/sample_fidelity.py $R/sample-fidelity models/gmn-small-omniglot.pt \
  models/gmn-small-imgread-omniglot.pt models/ns-medium-omniglot.pt $run/checkpoint.pt
