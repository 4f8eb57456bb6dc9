#!/usr/bin/env bash
# Re-creates every result folder under docs/results and docs/results.md.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/run_all.sh   (2 CPU cores, ~35 min)
# The GMN checkpoint is models/gmn-small-omniglot.pt (see models/gmn-small-omniglot.json for
# how it was trained). Two chains run side by side, one thread each.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
CK=models/gmn-small-omniglot.pt
# ev ARGS... --out DIR: evaluate unless DIR already holds results (delete it to redo)
ev() { local out="${*: -1}"; if [ -d "$out" ]; then echo "kept $out"; else
       ppl-fewshot --threads 1 evaluate "$@"; fi; }
(
  for s in with-replacement distinct; do
    ev --model pixel-beta-bernoulli --task nll --protocol gmn28 --sampler $s --out $R/pixel-gmn28-$s
  done
  ev --model pixel-beta-bernoulli --task transfer --out $R/pixel-mnist28
  ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler with-replacement \
     --samples 200 --out $R/gmn-small-gmn28-with-replacement
  ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler with-replacement \
     --samples 1000 --episodes 60 --out $R/gmn-small-gmn28-with-replacement-K1000-60ep
) &
(
  ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler distinct \
     --samples 200 --out $R/gmn-small-gmn28-distinct
  ev --checkpoint $CK --task transfer --samples 200 --episodes 200 --k-shots 1,5 \
     --tasks 200 --classify-samples 10 --methods likelihood,cosine --out $R/gmn-small-mnist28
  ev --checkpoint $CK --task classify --protocol gmn28 --ways 5,20 --k-shots 1 --tasks 300 \
     --classify-samples 10 --methods likelihood,cosine --out $R/gmn-small-gmn28-classify
) &
wait
ppl-fewshot report --results $R/* --out docs/results.md
