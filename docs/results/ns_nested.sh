#!/usr/bin/env bash
# The Neural Statistician's NLL table (TARGETS.md table 1 layout, gmn28, C_test 1, the shared
# 100-episode with-replacement bank of docs/results/ns-medium-gmn28-with-replacement) by nested
# importance sampling (`--inner-samples`, docs/findings.md section 25) against plain importance
# sampling at the same cost: K 100 draws of c x 10 draws of each item's z, against K 1000 joint
# draws. One CPU thread each, ~1 h each; an output that exists is skipped. `classify`: 5-way
# 1-shot likelihood classification on the 200 seeded ns28 tasks of
# docs/results/ns-medium-ns28-classify-likelihood (K 5 there, from the float32 run checkpoint),
# nested K 5 x M 10 against plain K 50 (the same cost, ~7 min each), then plain K 5 and K 200
# from the same shipped file (~30 min for K 200), 20-way 1-shot at K 50 (25 tasks, then 75),
# and 5-way 5-shot at K 50 (200 tasks). `ais0`: the 0-shot column by annealed
# importance sampling (K 8, 300 steps; findings section 26), ~30 min.
# One CPU thread each; an output that exists is skipped.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_nested.sh [nested|plain|classify|ais0|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results C=models/ns-medium-omniglot.pt
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
# nll ARGS... --out DIR: ev of $C's NLL table on the 100-episode bank; cl: 5-way 1-shot
# likelihood classification of $C on 200 ns28 tasks
nll() { ev --checkpoint $C --task nll --classes 1 --episodes 100 --khat-episodes 20 "$@"; }
nested() { nll --samples 100 --inner-samples 10 --out $R/ns-medium-gmn28-C1-K100x10-nested-100ep; }
plain() { nll --samples 1000 --out $R/ns-medium-gmn28-C1-K1000-100ep; }
cl() { ev --checkpoint $C --task classify --protocol ns28 --ways 5 --k-shots 1 --tasks 200 \
       --methods likelihood "$@"; }
classify() { local L="ns-medium, likelihood"
  cl --classify-samples 5 --inner-samples 10 --label "$L K 5 x 10 nested" \
     --out $R/ns-medium-ns28-classify-K5x10-nested
  cl --classify-samples 50 --label "$L K 50" --out $R/ns-medium-ns28-classify-K50
  cl --classify-samples 5 --label "$L K 5" --out $R/ns-medium-ns28-classify-K5
  cl --classify-samples 200 --label "$L K 200" --out $R/ns-medium-ns28-classify-K200
  # 20-way 1-shot at K 50 on 25 seeded tasks (500 decisions, ~7 min)
  cl --ways 20 --tasks 25 --classify-samples 50 --label "$L K 50, 25 tasks" \
     --out $R/ns-medium-ns28-classify-20way-K50
  cl --k-shots 5 --classify-samples 50 --label "$L K 50" --out $R/ns-medium-ns28-classify-5shot-K50
  cl --ways 20 --tasks 75 --classify-samples 50 --label "$L K 50, 75 tasks" \
     --out $R/ns-medium-ns28-classify-20way-K50-75tasks; }
ais0() { nll --shots 0 --samples 8 --ais-steps 300 --khat-episodes 0 \
     --label "ns-medium, 0 shots by AIS" --out $R/ns-medium-gmn28-C1-AIS300-K8-100ep; }
case "${1:-all}" in
  nested) nested ;;
  plain) plain ;;
  classify) classify ;;
  ais0) ais0 ;;
  all) nested; plain; classify; ais0 ;;
  *) echo "usage: $0 [nested|plain|classify|ais0|all]" >&2; exit 2 ;;
esac
