#!/usr/bin/env bash
# Does the Neural Statistician's context grow with the set when training shows it sets of many
# sizes, or when its statistic network multiplies per-item Gaussian factors? (docs/findings.md
# section 33). The gmn28 NS (models/ns-medium-gmn28-omniglot.pt, ns_gmn28.sh `sets5`) puts
# ~30 nats into q(c | X) for 1 drawing and for 20 (section 32): its statistic network reads
# log(1 + n) but only ever saw 5 items. Two runs of its recipe (channels 32, hidden 256, c 128,
# z 16, sample dropout 0.1; rot90/flip classes; 20k steps at 1e-3 / 3e-4 / 1e-4; seed 0) on
# sets of 1-20 drawings of one character (each set draws its size; 8 sets a step, 84 drawings
# a step on average against the exported model's 80):
# Section 33's numbers come from both runs' checkpoints at step 15000 (1667 steps into the
# 1e-4 phase): the runs were stopped there to leave time to evaluate them in the session (the
# exported model's validation loss per item: 94.3 nats at step 14k, 92.6 at 16k, 91.8 at 20k).
# `train`: mean pooling, as the exported model;
# `product`: pooling="product", q(c | X) = N(0, I) prod_t N(c; r(x_t), 1 / lambda(x_t))
#   (ppl_fewshot.nn.GaussianProductEncoder), whose precision adds up with the count.
# `nll`: the NLL tables on the shared 100-episode bank at K 100 (C_test 1; ~13 min each),
#   paired per episode with the exported model's (docs/results/paired_nll.py).
# `distinct`: the tables on the distinct bank (no drawing repeated in an episode; 100 episodes,
#   K 200, ~21 min each), paired with the exported model's (ns_context.sh `distinct`); section
#   33 ran it for the mean-pooled model only.
# `classify`: gmn28 few-shot classification by min-KL both ways and cosine (1000 tasks).
# `final`: the mean-pooled run's NLL table (K 100) and classification after all 20k steps
#   (the session of section 34 ran `train` again to finish it; the product run stays at 15k),
#   into folders named -s20k. The mean run's folder now holds the 20k checkpoint: its 15k
#   results are kept, and redoing them would score the 20k one under the 15k label.
# Each evaluation takes the model as a second argument: mean, product or both (the default).
# The context's information by set size: `python docs/results/ns_information.py
#   runs/ns-gmn28-sets1-20/checkpoint.pt runs/ns-gmn28-sets1-20-product/checkpoint.pt`.
# One CPU thread each; an output that exists is skipped; a stopped training resumes.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_setsizes.sh [train|product|nll|distinct|classify|final|all] [mean|product|both]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results run=runs/ns-gmn28-sets1-20
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
L="ns-medium trained on gmn28 sets of 1-20 (15k of 20k steps)"
LP="ns-medium, product pooling, trained on gmn28 sets of 1-20 (15k of 20k steps)"
# train_ns OUT SETTINGS...: ns-medium's recipe on gmn28 sets of 1-20
train_ns() {
  local out=$1; shift
  train_run ns-small --protocol gmn28 --steps 20000 --batch-size 8 --set-size 1-20 \
    --classes 1 --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
    "$@" --augmentation rot90,flip --lr 1e-3,3e-4,1e-4 --val-every 2000 \
    --checkpoint-every 500 --seed 0 --quiet --out "$out"; }
RUNS=("$run:$L:ns-gmn28trained-sets1-20" "$run-product:$LP:ns-gmn28trained-sets1-20-product")
# pick MODEL: the indices in RUNS of `mean`, `product` or `both`
pick() {
  case "$1" in
    mean) echo 0 ;; product) echo 1 ;; both) echo 0 1 ;;
    *) echo "unknown model $1 (mean, product or both)" >&2; return 2 ;;
  esac; }
# each MODEL FN: FN CHECKPOINT LABEL NAME for each run that MODEL names
each() {
  for i in $(pick "$1"); do
    IFS=: read -r ck lab name <<< "${RUNS[$i]}"
    "$2" "$ck/checkpoint.pt" "$lab" "$name"
  done; }
nll_one() { bank_nll "$1" 100 "$2" "$R/$3-C1-K100-100ep"; }
distinct_one() { bank_nll "$1" 200 "$2" "$R/$3-distinct-K200-100ep" --sampler distinct; }
classify_one() {
  ev --checkpoint "$1" --task classify --protocol gmn28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
    --methods min-kl,min-kl-reverse,cosine --label "$2" --out "$R/$3-gmn28-classify"; }
M=${2:-both}
pick "$M" > /dev/null
case "${1:-all}" in
  train) train_ns $run ;;
  product) train_ns $run-product --set pooling=product ;;
  nll|distinct|classify) each "$M" "$1_one" ;;
  final) L20="ns-medium trained on gmn28 sets of 1-20 (20k steps)"
    nll_one $run/checkpoint.pt "$L20" ns-gmn28trained-sets1-20-s20k
    classify_one $run/checkpoint.pt "$L20" ns-gmn28trained-sets1-20-s20k ;;
  all) train_ns $run; train_ns $run-product --set pooling=product; each both nll_one
    each both classify_one ;;
  *) echo "usage: $0 [train|product|nll|distinct|classify|final|all] [mean|product|both]" >&2
    exit 2 ;;
esac
