#!/usr/bin/env bash
# More steps for the two zoo models that still improve with budget (docs/findings.md section 23):
#   ns-medium (models/ns-medium-omniglot.pt, 20k steps) continued three times by 10k steps (Adam 3e-4
#     then 1e-4, seeds 1, 2, 3), each scored by 20-way / 5-way min-KL and cosine classification
#     on the same 1000 seeded ns28 test tasks as docs/results/ns-medium-ns28-classify;
#   the augmented mixture GMN (runs/gmn-mixture-ctrain1-rotflip-cont, 20k steps, trained by
#     generalization.sh) continued three times the same way (seeds 2, 3, 4), each scored on the
#     shared 100-episode gmn28 bank (C_test 1, with-replacement, K 1000); the 40k model is the
#     zoo's models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt (ppl-fewshot export, see its
#     card); the 50k one (seed 4) tests findings section 23's extrapolation of diminishing gains.
# One CPU thread per job; each continuation is ~45-60 min of one thread beside one other job.
# Every step is skipped when its output exists; an interrupted training resumes (a training
# still running holds its folder's lock, so running this twice at once cannot fork a run).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/more_steps.sh [ns|gmn|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
# cont RUN ARGS...: train_run ARGS for 10k steps at 3e-4 then 1e-4 into RUN
cont() { local run=$1; shift
  train_run "$@" --steps 10000 --lr 3e-4,1e-4 --checkpoint-every 500 --quiet --out "$run"; }
NS="ns-small --protocol ns28 --batch-size 16 --set-size 5 --set channels=32 --set hidden=256
    --set c_dim=128 --set sample_dropout=0.1 --val-every 2000"
GMN="gmn-small --protocol gmn28 --batch-size 10 --set-size 20 --val-every 1000 --classes 1
     --set prior=mixture --augmentation rot90,flip"
ns_chain() { local prev=models/ns-medium-omniglot.pt run i
  for i in 1 2 3; do
    run=runs/ns-medium-cont$i
    # shellcheck disable=SC2086
    cont $run $NS --seed $i --init-from $prev
    ev --checkpoint $run/checkpoint.pt --task classify --protocol ns28 --ways 5,20 \
       --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine \
       --label "ns-medium, $((10 * i + 20))k steps" --out $R/ns-medium-cont$i-ns28-classify
    prev=$run/checkpoint.pt
  done; }
gmn_chain() { local prev=runs/gmn-mixture-ctrain1-rotflip-cont run i
  for i in 2 3 4; do
    run=runs/gmn-mixture-ctrain1-rotflip-cont$i
    # shellcheck disable=SC2086
    cont $run $GMN --seed $i --init-from $prev/checkpoint.pt
    ev --checkpoint $run/checkpoint.pt --task nll --classes 1 --episodes 100 --samples 1000 \
       --khat-episodes 0 \
       --label "gmn-small mixture prior C_train 1, rot90/flip classes, $((10 * i + 10))k steps" \
       --out $R/gmn-small-mixture-ctrain1-rotflip-cont$i-gmn28-C1-K1000-100ep
    prev=$run
  done; }
# the 40k-step mixture model beside the zoo's 10k (unaugmented) and 20k ones: the distinct
# sampler (K 200, same 100 episodes as gmn-small-mixture-ctrain1-gmn28-distinct-K200-100ep) and
# the sample judge (sample_fidelity.py, temperatures 1 and 0.5), all three in one run
zoo() { local C=runs/gmn-mixture-ctrain1-rotflip-cont3/checkpoint.pt
  ev --checkpoint $C --task nll --classes 1 --episodes 100 --sampler distinct --samples 200 \
     --khat-episodes 0 --label "gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps" \
     --out $R/gmn-small-mixture-ctrain1-rotflip-cont3-gmn28-distinct-K200-100ep
  [ -f $R/sample-fidelity-mixture-ctrain1-rotflip/fidelity.json ] || python \
    $R/sample_fidelity.py $R/sample-fidelity-mixture-ctrain1-rotflip \
    models/gmn-small-mixture-ctrain1-omniglot.pt runs/gmn-mixture-ctrain1-rotflip-cont/checkpoint.pt \
    $C --temperatures 1,0.5
  # its own training characters (memorization, with the pixel yardstick), MNIST (table 3) and
  # 1-shot Omniglot classification (table 2's 1-shot columns, same seeded tasks)
  local L="gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps" T=$R/gmn-small-mixture-ctrain1-rotflip-cont3
  ev --checkpoint $C --split train --task nll --classes 1 --episodes 100 --samples 1000 \
     --khat-episodes 0 --label "$L" --out $T-train-gmn28-C1-K1000-100ep
  [ -f $R/generalization-gap/gmn-small-mixture-ctrain1-rotflip-cont3.json ] || python \
    $R/generalization_gap.py $R/generalization-gap/gmn-small-mixture-ctrain1-rotflip-cont3.json \
    $R/pixel-train-gmn28-with-replacement-100ep/pixel-beta-bernoulli.pt \
    $T-train-gmn28-C1-K1000-100ep $T-gmn28-C1-K1000-100ep
  ev --checkpoint $C --label "$L" --task transfer --samples 1000 --episodes 200 --k-shots 1,5 \
     --tasks 1000 --classify-samples 10 --methods likelihood,cosine --out $T-mnist28
  ev --checkpoint $C --label "$L" --task classify --protocol gmn28 --ways 5,20 --k-shots 1 \
     --tasks 1000 --classify-samples 10 --methods likelihood,cosine --out $T-gmn28-classify-1shot; }
# the chains are independent: `more_steps.sh ns` and `more_steps.sh gmn` run one each
case "${1:-all}" in
  ns) ns_chain ;;
  gmn) gmn_chain; zoo ;;
  all) ns_chain; gmn_chain; zoo ;;
  *) echo "usage: $0 [ns|gmn|all]" >&2; exit 2 ;;
esac
