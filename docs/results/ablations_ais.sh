#!/usr/bin/env bash
# Does the ranking of the GMN ablations (docs/results/ablations.sh, 2000 steps each) survive a
# better estimator? Each model on the seeded 50-episode gmn28 bank of its C_test: annealed
# importance sampling (K = 8, 100 distributions) and plain importance sampling (K = 1000), same
# episodes; per-episode NLLs in nll_episodes.csv for paired differences.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ablations_ais.sh
# (needs the runs of ablations.sh; ~7 min per model on a quiet core.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
W=runs/ablations
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
while read -r name ctest; do
  ck=$W/$name-s2000/checkpoint.pt
  for est in "AIS100-K8:--samples 8 --ais-steps 100" "K1000:--samples 1000"; do
    out=$R/ablation-$name-s2000-C$ctest-${est%%:*}-50ep
    # shellcheck disable=SC2086
    ev --checkpoint "$ck" --task nll --protocol gmn28 --classes "$ctest" \
      --sampler with-replacement --episodes 50 --khat-episodes 0 ${est#*:} --out "$out"
  done
done <<'TABLE'
gmn-ctrain2 1
no-pseudo-input-ctrain2 1
no-attention-ctrain1 1
no-attention-ctrain2 2
TABLE
