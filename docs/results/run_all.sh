#!/usr/bin/env bash
# Re-creates every result folder under docs/results and docs/results.md, one CPU thread per job,
# two chains side by side (2 cores). Each step is skipped when its output folder holds a result (delete
# it to redo). On 2 quiet cores: ~1 h for the evaluations of the checkpoints in models/, plus the
# trainings of the sub-scripts (ns.sh ~45 min, baselines.sh ~20 min, ablations.sh ~30 min).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
CK=models/gmn-small-omniglot.pt   # how it was trained: models/gmn-small-omniglot.json
# ev ARGS... --out DIR (common.sh): evaluate unless DIR already holds a result (delete it to redo)
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
(
  bash $R/ns.sh
  for s in with-replacement distinct; do
    ev --model pixel-beta-bernoulli --task nll --protocol gmn28 --sampler $s --out $R/pixel-gmn28-$s
  done
  ev --model pixel-beta-bernoulli --task transfer --out $R/pixel-mnist28
  bash $R/baselines.sh
) &
(
  # TARGETS.md table 1: GMN C_train=2, C_test = 1 on the 659 episodes, C_test = 2..4 on 200
  ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler with-replacement \
     --samples 1000 --out $R/gmn-small-gmn28-C1-K1000
  # TARGETS.md tables 2 and 3: classification (1000 tasks) and MNIST transfer
  ev --checkpoint $CK --task classify --protocol gmn28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
     --classify-samples 10 --methods likelihood,cosine --out $R/gmn-small-gmn28-classify
  ev --checkpoint $CK --task transfer --samples 1000 --episodes 200 --k-shots 1,5 --tasks 1000 \
     --classify-samples 10 --methods likelihood,cosine --out $R/gmn-small-mnist28
  bash $R/ablations.sh
  for c in 2 3 4; do
    ev --checkpoint $CK --task nll --protocol gmn28 --classes $c --sampler with-replacement \
       --samples 1000 --episodes 200 --out $R/gmn-small-gmn28-C$c-K1000-200ep
  done
  ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler distinct \
     --samples 200 --out $R/gmn-small-gmn28-distinct
) &
wait
for ck in $CK runs/ns-medium/checkpoint.pt runs/cvae-small-s3000/checkpoint.pt; do
  name=$(basename "$(dirname "$ck")"); [ "$ck" = $CK ] && name=gmn-small
  [ -f $R/figures-$name/figures.json ] || ppl-fewshot --threads 1 figures --checkpoint $ck --out $R/figures-$name
done
ppl-fewshot report --results $R/* --out docs/results.md
