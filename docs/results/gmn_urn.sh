#!/usr/bin/env bash
# Generative Matching Networks with a Pólya urn over each episode's drawings (docs/findings.md
# section 35): any model takes an urn (ppl_fewshot.models.urn; the settings urn_concentration
# and urn_atoms), here the Dirichlet process with the theta that ns_urn.sh fitted on training
# partitions (docs/results/ns-urn-fit/fit.json, 14.26; the fit involves no model). A query that
# repeats a context drawing scores log w_copy exactly; a new one log w_new plus the GMN's own
# conditional given the distinct context drawings. Weights unchanged (`ppl-fewshot export --set`).
# `nll`: on the shared 100-episode bank (C_test 1, K 1000, one thread; a few minutes each) the
#   zoo GMN (models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt, quickstart's) plain and with
#   the urn, and the image-read gmn-small with the urn (its plain row exists), for
#   docs/results/paired_nll.py and docs/results/nll_by_repeat.py;
# `full`: the zoo GMN with the urn on the whole 659-episode bank (the README's headline table;
#   paired with zoo_table.sh's plain row of the same file; ~20 min);
# `train plain|urn`: does training under the urn help? The zoo GMN continued 5000 steps (3e-4 /
#   1e-4, seed 7, episodes of 20 with replacement, as section 29's `small t20`) without or with
#   the urn (--set urn_concentration: each episode's repeats leave the GMN's own terms, so it
#   trains on the distinct drawings, as the urn asks it at test time), then scored with the urn
#   on the 100-episode bank (K 1000) and on the distinct bank (K 200: new drawings only); run
#   the two side by side (~35-45 min each beside other jobs), then `paired`;
# `full-trained`: the urn-trained one on the whole 659-episode bank (~20 min);
# `more`: the urn-trained one 5000 steps more with the urn (seed 8; ~20 min), scored like it;
# `full-more`: that one (50k steps, 10k of them with the urn; exported as
#   models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt) on the whole 659-episode bank;
# `distinct`: that one on the distinct bank (K 200: new drawings only; a few minutes);
# `ais`: that one on the 100-episode bank by annealed importance sampling (docs/results/ais.sh:
#   K 8, 100 steps; ~15 min beside one other job);
# `longer`: it continued 10000 steps more with the urn (3e-4 / 1e-4, seed 9; ~45 min beside one
#   other job), scored like it, to see whether urn training keeps gaining past 10k steps;
# `full-longer`: that one (60k steps) on the whole 659-episode bank;
# `samples`: do the samples of the zoo GMN, its plain control and the urn-trained ones (5k, 10k,
#   20k urn steps) draw the context's character, and do they copy it? (sample_fidelity.py, the
#   NS judge; temperatures 1 and 0.5; a few minutes.)
# `transfer mnist|classify`: the exported urn GMN (models/, 50k steps) in tables 2 and 3, as
#   more_steps.sh and zoo_table.sh scored the zoo GMN (the same seeded tasks and MNIST bank):
#   `mnist` the MNIST NLL table (200 episodes, K 1000, with the urn) and 10-way 1/5-shot
#   classification; `classify` 5- and 20-way 1- and 5-shot Omniglot classification
#   (likelihood, K 10, and cosine). The urn changes no decision: a query that repeats none of a
#   class's drawings gets the same log w_new in every class. ~25 min each on one thread.
# `ctest`: the exported urn GMN on the 200-episode banks of C_test 2, 3 and 4 (K 1000, with the
#   urn), table 1's other GMN rows, beside zoo_table.sh's plain rows of the zoo GMN (~10 min each).
# `ctrain2`: does the paper's C_train 2 help under the urn? The 50k urn GMN continued 10k steps
#   with the urn on episodes of two characters (seed 9, as `longer`, so that the two 60k models
#   differ only in C_train; ~50 min on one thread beside another job), then both 60k models on
#   the banks of C_test 1 (100 episodes) to 4 (200 episodes), K 1000 (as ctrain2.sh did without
#   the urn, section 26). `ctest-60k` and `ctrain2-only` are its two halves (one per core).
# `classify-control`: is `transfer classify`'s gain the urn's or the steps'? The 5k-step plain
#   control and the 5k-step urn-trained GMN (`train plain|urn`) on the same 1-shot tasks.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/gmn_urn.sh
#   [nll|full|train plain|train urn|full-trained|more|full-more|distinct|ais|longer|full-longer|samples|transfer mnist|transfer classify|ctest|ctrain2|ctest-60k|ctrain2-only|classify-control|paired|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results run=runs/gmn-urn
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
ZOO=models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt IMG=models/gmn-small-imgread-omniglot.pt
ZL="gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps"
IL="gmn-small with the image read, 10k steps"
U="+ Dirichlet-process urn (theta fitted; repeats exact)"
exports() {
  mkdir -p $run
  urn_export $ZOO $run/zoo-dp.pt 0
  urn_export $IMG $run/imgread-dp.pt 0; }
nll() {
  exports
  bank_nll $ZOO 1000 "$ZL" $R/gmn-small-mixture-ctrain1-rotflip-cont3-export-gmn28-C1-K1000-100ep
  bank_nll $run/zoo-dp.pt 1000 "$ZL $U" $R/gmn-small-mixture-ctrain1-rotflip-cont3-urn-dp-gmn28-C1-K1000-100ep
  bank_nll $run/imgread-dp.pt 1000 "$IL $U" $R/gmn-small-imgread-urn-dp-gmn28-C1-K1000-100ep; }
full() {
  exports
  ev --checkpoint $run/zoo-dp.pt --task nll --classes 1 --samples 1000 --khat-episodes 0 \
    --label "$ZL $U" --out $R/gmn-small-mixture-ctrain1-rotflip-cont3-urn-dp-gmn28-C1-K1000; }
trained() {  # trained plain|urn: the continued zoo GMN's run and its table with the urn
  local run=$run/cont5k-$1 args=()
  [ "$1" = urn ] && args=(--set urn_concentration="$(urn_theta 0)")
  train_run gmn-small --protocol gmn28 --classes 1 --set prior=mixture --augmentation rot90,flip \
    --val-every 1000 --checkpoint-every 500 --quiet --batch-size 10 --set-size 20 --seed 7 \
    --steps 5000 --lr 3e-4,1e-4 --init-from $ZOO "${args[@]}" --out $run
  local ck=$run/checkpoint.pt
  if [ "$1" = plain ]; then urn_export $ck $run/urn.pt 0; ck=$run/urn.pt; fi
  local label
  label="$ZL + 5k steps $([ "$1" = urn ] && echo "trained with the urn " || echo "")$U"
  bank_nll $ck 1000 "$label" $R/gmn-small-mixture-ctrain1-rotflip-cont5k-$1-urn-dp-gmn28-C1-K1000-100ep
  bank_nll $ck 200 "$label" $R/gmn-small-mixture-ctrain1-rotflip-cont5k-$1-urn-dp-gmn28-distinct-K200-100ep \
    --sampler distinct; }
urn_block() {  # urn_block SEED STEPS FROM N: the urn-trained GMN continued from FROM with the
  # urn, STEPS steps at seed SEED, to N thousand urn steps in all (runs/gmn-urn/contNk-urn)
  train_run gmn-small --protocol gmn28 --classes 1 --set prior=mixture --augmentation rot90,flip \
    --val-every 1000 --checkpoint-every 500 --quiet --batch-size 10 --set-size 20 --seed "$1" \
    --steps "$2" --lr 3e-4,1e-4 --init-from "$3" --set urn_concentration="$(urn_theta 0)" \
    --out $run/cont$4k-urn
  bank_nll $run/cont$4k-urn/checkpoint.pt 1000 "$ZL + $4k steps trained with the urn $U" \
    $R/gmn-small-mixture-ctrain1-rotflip-cont$4k-urn-urn-dp-gmn28-C1-K1000-100ep; }
full_urn() {  # full_urn N: the model trained N k steps with the urn on the whole bank
  ev --checkpoint $run/cont$1k-urn/checkpoint.pt --task nll --classes 1 --samples 1000 \
    --khat-episodes 0 --label "$ZL + $1k steps trained with the urn $U" \
    --out $R/gmn-small-mixture-ctrain1-rotflip-cont$1k-urn-urn-dp-gmn28-C1-K1000; }
distinct() {
  bank_nll $run/cont10k-urn/checkpoint.pt 200 "$ZL + 10k steps trained with the urn $U" \
    $R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-distinct-K200-100ep \
    --sampler distinct; }
ais() {
  bash $R/ais.sh $run/cont10k-urn/checkpoint.pt gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp \
    "$ZL + 10k steps trained with the urn $U"; }
samples() {
  [ -f $R/sample-fidelity-urn/fidelity.json ] || python $R/sample_fidelity.py $R/sample-fidelity-urn \
    $ZOO $run/cont5k-plain/checkpoint.pt $run/cont5k-urn/checkpoint.pt \
    $run/cont10k-urn/checkpoint.pt $run/cont20k-urn/checkpoint.pt --temperatures 1,0.5; }
classify_tasks() {  # classify_tasks CHECKPOINT LABEL K OUT: 5- and 20-way K-shot gmn28
  # classification on the 1000 seeded tasks of every GMN row (likelihood K 10, cosine)
  ev --checkpoint "$1" --label "$2" --task classify --protocol gmn28 --ways 5,20 --k-shots "$3" \
    --tasks 1000 --classify-samples 10 --methods likelihood,cosine --out "$4"; }
transfer() {  # transfer mnist|classify: the exported urn GMN in tables 3 and 2
  local c=models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt
  local l="$ZL + 10k steps trained with the urn $U" t=$R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn
  case "$1" in
    mnist) ev --checkpoint $c --label "$l" --task transfer --samples 1000 --episodes 200 \
      --k-shots 1,5 --tasks 1000 --classify-samples 10 --methods likelihood,cosine --out $t-mnist28 ;;
    classify) for k in 1 5; do classify_tasks $c "$l" $k $t-gmn28-classify-${k}shot; done ;;
    *) echo "transfer mnist or transfer classify" >&2; return 2 ;;
  esac; }
ctables() {  # ctables CHECKPOINT LABEL PREFIX C_TEST...: the banks of C_test 1 (100 episodes)
  # and 2-4 (200 episodes), K 1000, into PREFIX-gmn28-C<c>-K1000-<n>ep
  local ck=$1 label=$2 t=$3 c n; shift 3
  for c in "$@"; do
    n=$([ "$c" = 1 ] && echo 100 || echo 200)
    ev --checkpoint "$ck" --task nll --classes "$c" --episodes "$n" --samples 1000 \
      --khat-episodes 0 --label "$label" --out "$t-gmn28-C$c-K1000-${n}ep"
  done; }
ctest() {
  ctables models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt \
    "$ZL + 10k steps trained with the urn $U" \
    $R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp 2 3 4; }
ctrain2() {
  train_run gmn-small --protocol gmn28 --classes 2 --set prior=mixture --augmentation rot90,flip \
    --val-every 1000 --checkpoint-every 500 --quiet --batch-size 10 --set-size 20 --seed 9 \
    --steps 10000 --lr 3e-4,1e-4 --init-from $run/cont10k-urn/checkpoint.pt \
    --set urn_concentration="$(urn_theta 0)" --out $run/cont20k-urn-ctrain2
  ctables $run/cont20k-urn-ctrain2/checkpoint.pt \
    "$ZL + 10k steps trained with the urn + 10k with the urn at C_train 2 $U" \
    $R/gmn-small-mixture-ctrain2-rotflip-cont20k-urn-urn-dp 1 2 3 4; }
ctest_60k() {  # the C_train 1 side of ctrain2: the 60k urn GMN (`longer`) at C_test 2-4
  ctables $run/cont20k-urn/checkpoint.pt "$ZL + 20k steps trained with the urn $U" \
    $R/gmn-small-mixture-ctrain1-rotflip-cont20k-urn-urn-dp 2 3 4; }
classify_control() {
  local a
  for a in plain urn; do
    classify_tasks $run/cont5k-$a/checkpoint.pt "$ZL + 5k steps ($a)" 1 \
      $R/gmn-small-mixture-ctrain1-rotflip-cont5k-$a-gmn28-classify-1shot
  done; }
paired() {
  local a=$R/gmn-small-mixture-ctrain1-rotflip-cont3-urn-dp-gmn28-C1-K1000-100ep
  local p=$R/gmn-small-mixture-ctrain1-rotflip-cont5k-plain-urn-dp-gmn28-C1-K1000-100ep
  local u=$R/gmn-small-mixture-ctrain1-rotflip-cont5k-urn-urn-dp-gmn28-C1-K1000-100ep
  python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-cont3-export-gmn28-C1-K1000-100ep $a
  python $R/paired_nll.py $R/gmn-small-imgread-gmn28-C1-K1000-100ep \
    $R/gmn-small-imgread-urn-dp-gmn28-C1-K1000-100ep
  python $R/paired_nll.py $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K1000-100ep $a
  python $R/paired_nll.py $a $p
  python $R/paired_nll.py $p $u
  python $R/paired_nll.py ${p/C1-K1000/distinct-K200} ${u/C1-K1000/distinct-K200}
  python $R/paired_nll.py ${u/C1-K1000/distinct-K200} ${u/cont5k-urn-urn-dp-gmn28-C1-K1000/cont10k-urn-urn-dp-gmn28-distinct-K200}
  python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-cont3-gmn28-C1-K1000 \
    $R/gmn-small-mixture-ctrain1-rotflip-cont3-urn-dp-gmn28-C1-K1000
  local f=$R/gmn-small-mixture-ctrain1-rotflip-cont
  python $R/paired_nll.py ${u/cont5k/cont10k} ${u/cont5k/cont20k}
  python $R/paired_nll.py ${f}5k-urn-urn-dp-gmn28-C1-K1000 ${f}10k-urn-urn-dp-gmn28-C1-K1000
  python $R/paired_nll.py ${f}3-urn-dp-gmn28-C1-K1000 ${f}10k-urn-urn-dp-gmn28-C1-K1000
  python $R/paired_nll.py ${f}10k-urn-urn-dp-gmn28-C1-K1000 ${f}20k-urn-urn-dp-gmn28-C1-K1000
  python $R/paired_nll.py ${f}10k-urn-urn-dp-gmn28-C1-K1000-100ep ${f}10k-urn-urn-dp-gmn28-C1-AIS100-K8-100ep
  python $R/nll_by_repeat.py ${f}10k-urn-urn-dp-gmn28-C1-K1000-100ep ${f}10k-urn-urn-dp-gmn28-C1-AIS100-K8-100ep
  python $R/nll_by_repeat.py $R/gmn-small-mixture-ctrain1-rotflip-cont3-export-gmn28-C1-K1000-100ep \
    $a $R/gmn-small-imgread-urn-dp-gmn28-C1-K1000-100ep \
    $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K1000-100ep $p $u; }
case "${1:-all}" in
  nll) nll ;;
  full) full ;;
  train) trained "${2:?train plain or train urn}" ;;
  full-trained) full_urn 5 ;;
  more) urn_block 8 5000 $run/cont5k-urn/checkpoint.pt 10 ;;
  full-more) full_urn 10 ;;
  distinct) distinct ;;
  ais) ais ;;
  longer) urn_block 9 10000 $run/cont10k-urn/checkpoint.pt 20 ;;
  full-longer) full_urn 20 ;;
  samples) samples ;;
  transfer) transfer "${2:?transfer mnist or transfer classify}" ;;
  ctest) ctest ;;
  ctrain2) ctest_60k; ctrain2 ;;
  ctest-60k) ctest_60k ;;
  ctrain2-only) ctrain2 ;;
  classify-control) classify_control ;;
  paired) paired ;;
  all) nll; full; trained plain; trained urn; full_urn 5
    urn_block 8 5000 $run/cont5k-urn/checkpoint.pt 10; full_urn 10; distinct; ais
    urn_block 9 10000 $run/cont10k-urn/checkpoint.pt 20; full_urn 20; samples
    transfer mnist; transfer classify; ctest; ctest_60k; ctrain2
    classify_control; paired ;;
  *) echo "usage: $0 [nll|full|train plain|train urn|full-trained|more|full-more|distinct|ais|longer|full-longer|samples|transfer mnist|transfer classify|ctest|ctrain2|ctest-60k|ctrain2-only|classify-control|paired|all]" >&2
     exit 2 ;;
esac
