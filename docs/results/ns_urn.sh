#!/usr/bin/env bash
# The Neural Statistician with a Pólya urn over its items (docs/findings.md section 34): the
# exported gmn28 NS (models/ns-medium-gmn28-omniglot.pt, unchanged weights) as the base measure
# p(x | c) of a random discrete measure, so that an exact repeat of an earlier drawing costs
# -log w_copy nats (ppl_fewshot.models.urn; the settings urn_concentration, urn_atoms).
# `fit`: the urn's theta by maximum likelihood on the partitions of 5000 training episodes
#   (gmn28 training classes, 20 items with replacement; docs/results/ns_urn_fit.py, seconds);
# `export`: two checkpoints in runs/ns-urn (mkdir) with the fitted theta (common.sh's urn_export):
#   a Dirichlet process (atoms 0) and 20 atoms;
# `nll`: their NLL tables on the shared 100-episode bank (with replacement, C_test 1, K 100;
#   a query that repeats a context drawing scores log w_copy exactly, a new one log w_new plus
#   the NS's importance-sampled conditional given the distinct context drawings; ~13 min each
#   on one thread), paired with the plain model's K 100 row (section 31) by
#   docs/results/paired_nll.py and split into repeated and new queries by
#   docs/results/nll_by_repeat.py. On episodes without repeats (the distinct bank) the urn
#   only adds -log w_new to each cell (+0.07 to +0.85 nats for the DP, to +3.0 for 20 atoms
#   at 19 shots): nothing to run.
# `k1000`: the Dirichlet-process urn's table at the protocol's K 1000 (~2 h on one thread),
#   paired with the plain model's K 1000 row (section 32; the same weights).
# `train plain|urn`: does training under the urn help the NS, as it helps the GMN (section 35)?
#   The gmn28 NS's run (runs/ns-medium-gmn28-sets5, `bash docs/results/ns_gmn28.sh sets5`)
#   continued 5000 steps (3e-4 / 1e-4, seed 7, its sets of 5, 16 a step) without or with the
#   Dirichlet-process urn (--set urn_concentration: a set's repeats leave the NS's own terms), then
#   scored with the urn on the 100-episode bank at K 100; run the two side by side (~40 min
#   each beside one other job), then `paired`; `classify-trained`: both on gmn28 few-shot
#   classification (min-KL both ways and cosine, 1000 tasks; ns_gmn28.sh classify's settings).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_urn.sh [fit|export|nll|k1000|all] [dp|n20|both]
#   or ns_urn.sh train plain|urn, ns_urn.sh classify-trained, ns_urn.sh paired,
#   ns_urn.sh proposal (the guide's width fitted as a proposal, section 41)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results run=runs/ns-urn
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
BASE=models/ns-medium-gmn28-omniglot.pt
fit() {  # the fit is kept in docs/results, so `export` needs no refit on a fresh clone
  mkdir -p $R/ns-urn-fit
  [ -f $R/ns-urn-fit/fit.json ] ||
    python docs/results/ns_urn_fit.py --episodes 5000 --out $R/ns-urn-fit/fit.json; }
export_one() {  # export_one NAME ATOMS
  mkdir -p $run
  urn_export $BASE $run/$1.pt "$2"; }
nll_one() {  # nll_one NAME LABEL
  bank_nll $run/$1.pt 100 "$2" $R/ns-medium-gmn28trained-sets5-urn-$1-C1-K100-100ep; }
trained() {  # trained plain|urn: the continued gmn28 NS and its K 100 table with the urn
  local out=$run/cont5k-$1 args=()
  [ "$1" = urn ] && args=(--set urn_concentration="$(urn_theta 0)")
  train_run ns-small --protocol gmn28 --steps 5000 --batch-size 16 --set-size 5 --classes 1 \
    --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
    --augmentation rot90,flip --lr 3e-4,1e-4 --val-every 1000 --checkpoint-every 500 --seed 7 \
    --quiet --init-from runs/ns-medium-gmn28-sets5/checkpoint.pt "${args[@]}" --out $out
  local ck=$out/checkpoint.pt
  if [ "$1" = plain ]; then urn_export $ck $out/urn.pt 0; ck=$out/urn.pt; fi
  bank_nll $ck 100 "ns-medium trained on gmn28 sets of 5, + 5k steps$([ "$1" = urn ] &&
    echo " trained with the urn"), + Dirichlet-process urn (theta fitted; repeats exact)" \
    $R/ns-medium-gmn28trained-sets5-cont5k-$1-urn-dp-C1-K100-100ep; }
classify_trained() {
  local arm
  for arm in plain urn; do
    ev --checkpoint $run/cont5k-$arm/checkpoint.pt --task classify --protocol gmn28 --ways 5,20 \
      --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine \
      --label "ns-medium trained on gmn28 sets of 5, + 5k steps$([ $arm = urn ] &&
        echo " trained with the urn")" --out $R/ns-medium-gmn28trained-sets5-cont5k-$arm-gmn28-classify
  done; }
proposal() {  # the proposal scale fitted for the NS (section 41): factors 0.8-2 of every Normal
  # scale of its guide, c's and z's, at K 100 on 20 episodes of its held-out validation classes,
  # then the bank from the fitted factor (~11 + 12 min on one thread)
  [ -f $run/dp.pt ] || export_one dp 0
  ev --checkpoint $run/dp.pt --task nll --classes 1 --episodes 100 --samples 100 \
    --khat-episodes 0 --proposal-scale fit --fit-scales 0.8,1,1.25,1.5,2 \
    --label "ns-medium trained on gmn28 sets of 5 + Dirichlet-process urn (theta fitted; repeats exact), fitted proposal" \
    --out $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K100-100ep-fitted
  python $R/paired_nll.py $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K100-100ep \
    $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K100-100ep-fitted; }
paired() {
  local a=$R/ns-medium-gmn28trained-sets5-urn-dp-C1-K100-100ep
  local p=$R/ns-medium-gmn28trained-sets5-cont5k-plain-urn-dp-C1-K100-100ep
  python $R/paired_nll.py $a $p
  python $R/paired_nll.py $p ${p/plain/urn}
  python $R/nll_by_repeat.py $a $p ${p/plain/urn}; }
case "${1:-all}" in
  train) trained "${2:?train plain or train urn}"; exit ;;
  classify-trained) classify_trained; exit ;;
  paired) paired; exit ;;
  proposal) proposal; exit ;;
esac
M=${2:-both}
names() { case "$M" in dp) echo dp ;; n20) echo n20 ;; both) echo dp n20 ;;
  *) echo "unknown model $M (dp, n20 or both)" >&2; return 2 ;; esac; }
names > /dev/null
export_all() { for n in $(names); do export_one "$n" "$([ "$n" = dp ] && echo 0 || echo 20)"; done; }
nll() {
  for n in $(names); do
    if [ "$n" = dp ]; then L="Dirichlet-process urn"; else L="20-atom urn"; fi
    nll_one "$n" "ns-medium trained on gmn28 sets of 5 + $L (theta fitted; repeats exact)"
  done; }
k1000() {
  bank_nll $run/dp.pt 1000 "ns-medium trained on gmn28 sets of 5 + Dirichlet-process urn (theta fitted; repeats exact)" \
    $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K1000-100ep; }
case "${1:-all}" in
  fit) fit ;;
  export) export_all ;;
  nll) nll ;;
  k1000) k1000 ;;
  all) fit; export_all; nll; k1000 ;;
  *) echo "usage: $0 [fit|export|nll|k1000|all] [dp|n20|both]" >&2; exit 2 ;;
esac
