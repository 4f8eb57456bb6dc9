#!/usr/bin/env bash
# GMN with the mixture prior (prior=mixture: one Normal per memory item and one for the
# pseudo-input, weighted by the prior's last attention) against models/gmn-small-omniglot.pt,
# retrained with that one change (the card's command, seed and budget: 10000 steps x 10
# episodes of 20 items from 2 classes); a second seed of the Gaussian-prior recipe says how far
# two runs of one recipe differ, and the mixture recipe with seed 1 likewise. Then, for the models:
#   - the sample judge (docs/results/sample_fidelity.py, 100 gmn28 test episodes);
#   - the prior probe (docs/results/gmn_sampling.py);
#   - the conditional NLL on the seeded 100-episode gmn28 bank (C_test = 1; with-replacement
#     K = 1000 and distinct K = 200), paired with gmn-small's rows of the same bank;
#   - sample grids and attention maps (ppl-fewshot figures).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/gmn_mixture.sh
# (~35-45 min per training on one thread, the two side by side; ~9 min of evaluation.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
train() {  # train OUT ARGS...: the recipe of models/gmn-small-omniglot.json
  local run=$1; shift
  [ -f "$run/summary.json" ] && return
  # shellcheck disable=SC2068
  ppl-fewshot --threads 1 train gmn-small --protocol gmn28 --steps 10000 --batch-size 10 \
    --set-size 20 --classes 2 --lr 1e-3,3e-4,1e-4 --val-every 1000 --checkpoint-every 500 \
    --out "$run" --quiet $@ $( [ -f "$run/checkpoint.pt" ] && echo --resume )
}
train runs/gmn-mixture --seed 0 --set prior=mixture &
train runs/gmn-gauss-seed1 --seed 1 &
wait
train runs/gmn-mixture-seed1 --seed 1 --set prior=mixture
M=models/gmn-small-mixture-omniglot.pt
[ -f $M ] || ppl-fewshot export --checkpoint runs/gmn-mixture/checkpoint.pt --out $M
ev() { local out="${*: -1}"; compgen -G "$out/*.json" > /dev/null || ppl-fewshot --threads 1 \
       evaluate --task nll --protocol gmn28 --classes 1 --episodes 100 --khat-episodes 0 "$@"; }
ev --checkpoint $M --sampler with-replacement --samples 1000 \
   --label "gmn-small, mixture prior, 10k steps" --out $R/gmn-small-mixture-gmn28-C1-K1000-100ep
ev --checkpoint $M --sampler distinct --samples 200 \
   --label "gmn-small, mixture prior, 10k steps" --out $R/gmn-small-mixture-gmn28-distinct-K200-100ep
ev --checkpoint runs/gmn-gauss-seed1/checkpoint.pt --sampler with-replacement --samples 1000 \
   --label "gmn-small, seed 1, 10k steps" --out $R/gmn-small-seed1-gmn28-C1-K1000-100ep
python $R/sample_fidelity.py $R/sample-fidelity models/gmn-small-omniglot.pt \
  runs/gmn-gauss-seed1/checkpoint.pt models/gmn-small-imgread-omniglot.pt $M \
  runs/gmn-mixture-seed1/checkpoint.pt models/ns-medium-omniglot.pt
python $R/gmn_sampling.py $R/gmn-sampling-mixture $M
ppl-fewshot --threads 1 figures --checkpoint $M --out $R/figures-gmn-small-mixture
python $R/paired_nll.py $R/gmn-small-gmn28-C1-K1000-100ep $R/gmn-small-mixture-gmn28-C1-K1000-100ep
python $R/paired_nll.py $R/gmn-small-gmn28-distinct-K200-100ep $R/gmn-small-mixture-gmn28-distinct-K200-100ep
python $R/paired_nll.py $R/gmn-small-gmn28-C1-K1000-100ep $R/gmn-small-seed1-gmn28-C1-K1000-100ep
