#!/usr/bin/env bash
# The importance sampler behind the GMN numbers (docs/findings.md section 38): how far the
# guide q(z | x, X) is from calibrated, and what more draws or a wider proposal buy.
# `k`: likelihood classification of the urn GMN in models/ (the table 2 row of section 37, K 10)
#   with K 10 to 300, and at K 10 with the guide's scales widened 1.5x and 2x, on the same seeded
#   gmn28 tasks (docs/results/classify_k.py; 5-way 1- and 5-shot on 300 tasks, 20-way on 100
#   and, K 10 and 100 only, on 200 more; ~2.5 h in all on one thread);
# `calibration`: simulation-based calibration of q(z | x, X) given real contexts (0, 1, 5 and 19
#   drawings of the first 100 episodes of the shared bank; 10 simulations each;
#   docs/results/query_calibration.py) for the zoo GMN, the urn GMN and the plain gmn-small, and
#   for the zoo GMN with its guide widened 1.6x (~2 min each);
# `nll`: the urn GMN on the shared 100-episode bank (C_test 1, K 1000, with the urn) from the guide
#   widened 1.25, 1.5 and 2 times (`evaluate --proposal-scale`; ~5 min each), paired with
#   gmn_urn.sh's plain row of the same bank and seed (`paired`);
# `table2`: the urn GMN's 5-way 1- and 5-shot cells of table 2 on section 37's 1000 seeded tasks
#   with K 100 instead of 10 (~35 min on one thread).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/proposals.sh [k|calibration|nll|table2|paired|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
URN=models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt
ZOO=models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt
PLAIN=$R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-C1-K1000-100ep
UL="gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps + 10k steps trained with the urn + Dirichlet-process urn (theta fitted; repeats exact)"
ck() {  # ck OUT ARGS...: classify_k.py unless OUT exists
  local out=$1; shift
  if [ -f "$out" ]; then echo "kept $out"; else python $R/classify_k.py $URN "$@" --out "$out"; fi
}
k() {
  mkdir -p $R/proposal-classify
  ck $R/proposal-classify/w5-s5.json --ways 5 --shots 5 --tasks 300 --k 10,30,100,300
  ck $R/proposal-classify/w5-s1.json --ways 5 --shots 1 --tasks 300 --k 10,30,100,300
  ck $R/proposal-classify/w20-s5.json --ways 20 --shots 5 --tasks 100 --k 10,100
  ck $R/proposal-classify/w20-s1.json --ways 20 --shots 1 --tasks 100 --k 10,100
  ck $R/proposal-classify/w20-s5-200.json --ways 20 --shots 5 --tasks 200 --k 10,100
  ck $R/proposal-classify/w20-s1-200.json --ways 20 --shots 1 --tasks 200 --k 10,100
  for t in "5 5 300" "5 1 300" "20 5 100" "20 1 100"; do
    set -- $t
    ck $R/proposal-classify/w$1-s$2-widened.json --ways $1 --shots $2 --tasks $3 \
      --k 10,10x1.5,10x2
  done; }
cal() {  # cal CHECKPOINT NAME [ARGS...]
  local ck=$1 out=$R/query-calibration/$2.json; shift 2
  if [ -f "$out" ]; then echo "kept $out"; else
    python $R/query_calibration.py "$ck" "$@" --out "$out"; fi; }
calibration() {
  cal $ZOO zoo; cal $URN urn; cal models/gmn-small-omniglot.pt plain
  cal $ZOO zoo-widened-1.6 --proposal-scale 1.6; }
nll() {
  for s in 1.25 1.5 2; do
    bank_nll $URN 1000 "$UL, proposal x $s" \
      $R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-C1-K1000-100ep-proposal$s \
      --proposal-scale $s
  done; }
table2() {  # table 2's 5-way cells of the urn GMN with K 100 (section 37's row has K 10)
  ev --checkpoint $URN --task classify --protocol gmn28 --ways 5 --k-shots 1,5 --tasks 1000 \
    --methods likelihood --classify-samples 100 --label "$UL, K 100" \
    --out $R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-gmn28-classify-5way-K100; }
paired() {
  for s in 1.25 1.5 2; do
    python $R/paired_nll.py $PLAIN \
      $R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-C1-K1000-100ep-proposal$s
  done; }
case "${1:-all}" in
  k) k ;;
  calibration) calibration ;;
  nll) nll ;;
  table2) table2 ;;
  paired) paired ;;
  all) k; calibration; nll; table2; paired ;;
  *) echo "usage: $0 [k|calibration|nll|table2|paired|all]" >&2; exit 2 ;;
esac
