#!/usr/bin/env bash
# The Neural Statistician's NLL table (TARGETS.md table 1 layout, gmn28, C_test 1, the shared
# 100-episode with-replacement bank of docs/results/ns-medium-gmn28-with-replacement) by nested
# importance sampling (`--inner-samples`, docs/findings.md section 25) against plain importance
# sampling at the same cost: K 100 draws of c x 10 draws of each item's z, against K 1000 joint
# draws. One CPU thread each, ~1 h each; an output that exists is skipped.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_nested.sh [nested|plain|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results C=models/ns-medium-omniglot.pt
ev() { local out="${*: -1}"; compgen -G "$out/*.json" > /dev/null || ppl-fewshot --threads 1 \
       evaluate --checkpoint $C --task nll --classes 1 --episodes 100 --khat-episodes 20 "$@"; }
nested() { ev --samples 100 --inner-samples 10 --out $R/ns-medium-gmn28-C1-K100x10-nested-100ep; }
plain() { ev --samples 1000 --out $R/ns-medium-gmn28-C1-K1000-100ep; }
case "${1:-all}" in
  nested) nested ;;
  plain) plain ;;
  all) nested; plain ;;
  *) echo "usage: $0 [nested|plain|all]" >&2; exit 2 ;;
esac
