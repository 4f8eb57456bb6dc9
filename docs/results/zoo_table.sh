#!/usr/bin/env bash
# Table 1 for the zoo's default GMN (models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt, 40k
# steps, docs/findings.md section 23) on the shared banks, as the other rows of docs/results.md:
# the whole 659-episode gmn28 bank at C_test 1 and the 200-episode banks at C_test 2, 3, 4
# (with-replacement, K 1000, every shot column), then 5-shot classification (table 2's 5-shot
# columns, the seeded tasks of the 1-shot run). One CPU thread; each output is skipped when it
# exists. ~20 min for the C_test 1 table, ~6 min per other C_test on a quiet core.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/zoo_table.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results C=models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt
T=$R/gmn-small-mixture-ctrain1-rotflip-cont3
L="gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps"
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
# score ARGS... --out DIR: ev of $C, labelled $L
score() { ev --checkpoint $C --label "$L" "$@"; }
score --task nll --classes 1 --samples 1000 --khat-episodes 0 --out $T-gmn28-C1-K1000
for c in 2 3 4; do
  score --task nll --classes $c --episodes 200 --samples 1000 --khat-episodes 0 \
     --out $T-gmn28-C$c-K1000-200ep
done
score --task classify --protocol gmn28 --ways 5,20 --k-shots 5 --tasks 1000 --classify-samples 10 \
   --methods likelihood,cosine --out $T-gmn28-classify-5shot
