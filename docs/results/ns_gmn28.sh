#!/usr/bin/env bash
# The Neural Statistician trained on gmn28, the protocol of its NLL table (TARGETS.md table 1;
# docs/findings.md section 31). ns-medium (models/ns-medium-omniglot.pt) was trained on ns28,
# whose 1200 training characters are drawn from both Omniglot sets: 496 of gmn28's 659 test
# characters (69 of the shared bank's 100 episodes) are among them, and its drawings are area-
# resized and binarized by a fresh Bernoulli draw, where gmn28's are the authors' thresholded
# arrays. `train` trains the same network (channels 32, hidden 256, c 128, z 16, sample dropout
# 0.1) on gmn28's 964 background characters, rotated and mirrored as new classes like the GMNs
# of sections 27-30, on episodes like theirs (sets of 20 drawings of one character, the
# authors' with-replacement sampler), 4 sets a step (80 drawings, as ns-medium's 16 sets of 5),
# ns-medium's 20k-step schedule (1e-3 / 3e-4 / 1e-4). `sets5` trains it on gmn28 with
# ns-medium's own sets of 5 (16 a step), which separates the protocol from the set size; it
# is the better of the two and is exported as models/ns-medium-gmn28-omniglot.pt. `nll`: the three models' NLL
# tables on the shared 100-episode bank at K 100 (~13 min each on one shared thread; paired per
# episode with docs/results/paired_nll.py and nll_by_seen.py). `classify`: gmn28 few-shot
# classification (TARGETS.md table 2, the GMN authors' NS row): min-KL both ways and cosine
# (1000 tasks), and 5-way 1-shot by likelihood (K 5, 200 tasks). `k1000`: the exported
# sets-of-5 model's table at the protocol's K 1000 (~2 h on one shared thread).
# One CPU thread each (the sets-of-20 training ran its first 2500 steps on two threads, then
# resumed from its checkpoint on one); an output that exists is skipped; a stopped training
# resumes.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_gmn28.sh [train|sets5|nll|classify|k1000|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results run=runs/ns-medium-gmn28
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
L="ns-medium trained on gmn28 episodes of 20" L5="ns-medium trained on gmn28 sets of 5"
# train_ns SET_SIZE BATCH OUT: ns-medium's recipe on gmn28
train_ns() {
  train_run ns-small --protocol gmn28 --steps 20000 --batch-size "$2" --set-size "$1" \
    --classes 1 --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
    --augmentation rot90,flip --lr 1e-3,3e-4,1e-4 --val-every 2000 --checkpoint-every 500 \
    --seed 0 --quiet --out "$3"; }
train() { train_ns 20 4 $run; }
sets5() { train_ns 5 16 $run-sets5; }
nll() {
  bank_nll $run-sets5/checkpoint.pt 100 "$L5" $R/ns-medium-gmn28trained-sets5-C1-K100-100ep
  bank_nll $run/checkpoint.pt 100 "$L" $R/ns-medium-gmn28trained-C1-K100-100ep
  bank_nll models/ns-medium-omniglot.pt 100 \
    "ns-small[c_dim=128,channels=32,hidden=256,sample_dropout=0.1]" $R/ns-medium-gmn28-C1-K100-100ep
}
classify() {
  for r in "$run:$L:ns-medium-gmn28trained" "$run-sets5:$L5:ns-medium-gmn28trained-sets5"; do
    IFS=: read -r ck lab name <<< "$r"
    ev --checkpoint "$ck/checkpoint.pt" --task classify --protocol gmn28 --ways 5,20 \
      --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine --label "$lab" \
      --out "$R/$name-gmn28-classify"
    ev --checkpoint "$ck/checkpoint.pt" --task classify --protocol gmn28 --ways 5 --k-shots 1 \
      --tasks 200 --methods likelihood --classify-samples 5 --label "$lab, K 5" \
      --out "$R/$name-gmn28-classify-likelihood"
  done; }
k1000() { bank_nll models/ns-medium-gmn28-omniglot.pt 1000 "$L5" \
  $R/ns-medium-gmn28trained-sets5-C1-K1000-100ep; }
case "${1:-all}" in
  train) train ;;
  sets5) sets5 ;;
  nll) nll ;;
  classify) classify ;;
  k1000) k1000 ;;
  all) train; sets5; nll; classify; k1000 ;;
  *) echo "usage: $0 [train|sets5|nll|classify|k1000|all]" >&2; exit 2 ;;
esac
