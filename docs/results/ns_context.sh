#!/usr/bin/env bash
# What the Neural Statistician's context holds (docs/findings.md section 32). The NS trained
# on gmn28 (models/ns-medium-gmn28-omniglot.pt, ns_gmn28.sh `sets5`) puts about 30 nats into
# q(c | X) whatever the set's size (`python docs/results/ns_information.py`), and its NLL
# columns stay flat from 1 shot on.
# `distinct`: that model's NLL table on the distinct bank (no drawing repeated in an episode;
#   100 episodes, K 200, ~25 min on one shared thread), paired with the zoo GMN's row of the
#   same bank by docs/results/paired_nll.py.
# `train`: does the per-item latent crowd the context out? The same network with z of 4 units
#   instead of 16 and nothing else changed (channels 32, hidden 256, c 128, sample dropout 0.1;
#   sets of 5 of one character, 16 a step; rot90/flip classes; 20k steps at 1e-3 / 3e-4 /
#   1e-4; seed 0; 4859 s on one shared thread).
# `nll`: its NLL table on the shared with-replacement bank at K 100 (C_test 1; ~13 min),
#   paired with the z-of-16 model's. `classify`: gmn28 few-shot classification by min-KL both
#   ways and cosine (1000 tasks).
# One CPU thread each; an output that exists is skipped; a stopped training resumes.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_context.sh [distinct|train|nll|classify|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results run=runs/ns-medium-gmn28-z4
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
L="ns-medium, z of 4, trained on gmn28 sets of 5"
distinct() {
  bank_nll models/ns-medium-gmn28-omniglot.pt 200 "ns-medium trained on gmn28 sets of 5" \
    $R/ns-medium-gmn28trained-sets5-distinct-K200-100ep --sampler distinct; }
train() {
  train_run ns-small --protocol gmn28 --steps 20000 --batch-size 16 --set-size 5 \
    --classes 1 --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
    --set z_dim=4 --augmentation rot90,flip --lr 1e-3,3e-4,1e-4 --val-every 2000 \
    --checkpoint-every 500 --seed 0 --quiet --out $run; }
nll() { bank_nll $run/checkpoint.pt 100 "$L" $R/ns-medium-gmn28trained-z4-C1-K100-100ep; }
classify() {
  ev --checkpoint $run/checkpoint.pt --task classify --protocol gmn28 --ways 5,20 \
    --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine --label "$L" \
    --out $R/ns-medium-gmn28trained-z4-gmn28-classify; }
case "${1:-all}" in
  distinct) distinct ;;
  train) train ;;
  nll) nll ;;
  classify) classify ;;
  all) distinct; train; nll; classify ;;
  *) echo "usage: $0 [distinct|train|nll|classify|all]" >&2; exit 2 ;;
esac
