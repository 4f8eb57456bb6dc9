#!/usr/bin/env bash
# C_train 2 against C_train 1 from the same 40k-step weights (docs/findings.md section 26): the
# zoo's augmented mixture GMN (runs/gmn-mixture-ctrain1-rotflip-cont3, 40k steps, C_train 1)
# continued 10k steps on episodes of two characters (--classes 2; the paper trains all its table-1
# rows so) with the recipe, seed and schedule of more_steps.sh's fourth C_train 1 continuation
# (Adam 3e-4 then 1e-4, seed 4), so the two 50k models differ only in C_train. Both are scored on
# the shared banks: C_test 1 (100 episodes) and C_test 2, 3, 4 (200 episodes each),
# with-replacement, K 1000, every shot column. Needs runs/gmn-mixture-ctrain1-rotflip-cont4
# (`bash docs/results/more_steps.sh gmn`) for the C_train 1 side.
# `60k`: the C_train 2 model continued 10k more steps the same way (seed 5; findings section 27),
# scored on the same banks.
# One CPU thread; ~30-50 min of training, ~3-4 min per table; every output is skipped when it
# exists and an interrupted training resumes.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ctrain2.sh [50k|60k]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
# train RUN INIT SEED: continue INIT 10k steps at C_train 2 into RUN (train_run: skipped when
#   finished, resumed when interrupted)
train() { local run=$1 init=$2 seed=$3
  train_run gmn-small --protocol gmn28 \
    --batch-size 10 --set-size 20 --val-every 1000 --classes 2 --set prior=mixture \
    --augmentation rot90,flip --seed "$seed" --init-from "$init" \
    --steps 10000 --lr 3e-4,1e-4 --checkpoint-every 500 --quiet --out "$run"; }
# tables NAME LABEL C_TESTS: score runs/gmn-mixture-NAME/checkpoint.pt at each C_test
tables() { local name=$1 label=$2 c n
  local C=runs/gmn-mixture-$name/checkpoint.pt T=$R/gmn-small-mixture-$name
  # a training still running has a checkpoint.pt but no summary.json yet: wait for it (2 h at most)
  for _ in $(seq 120); do [ -f "${C%/*}/summary.json" ] && break; sleep 60; done
  [ -f "${C%/*}/summary.json" ] || { echo "${C%/*} has not finished training" >&2; exit 1; }
  for c in $3; do
    n=$([ "$c" = 1 ] && echo 100 || echo 200)
    ev --checkpoint "$C" --label "$label" --task nll --classes "$c" --episodes "$n" \
       --samples 1000 --khat-episodes 0 --out "$T-gmn28-C$c-K1000-${n}ep"
  done; }
case "${1:-50k}" in
  50k)
    train runs/gmn-mixture-ctrain2-rotflip-cont4 runs/gmn-mixture-ctrain1-rotflip-cont3/checkpoint.pt 4
    L="gmn-small mixture prior C_train 2, rot90/flip classes, 50k steps"
    tables ctrain2-rotflip-cont4 "$L (40k C_train 1 + 10k C_train 2)" "1 2 3 4"
    tables ctrain1-rotflip-cont4 "gmn-small mixture prior C_train 1, rot90/flip classes, 50k steps" \
      "2 3 4" ;;
  60k)
    train runs/gmn-mixture-ctrain2-rotflip-cont5 runs/gmn-mixture-ctrain2-rotflip-cont4/checkpoint.pt 5
    L="gmn-small mixture prior C_train 2, rot90/flip classes, 60k steps"
    tables ctrain2-rotflip-cont5 "$L (40k C_train 1 + 20k C_train 2)" "1 2 3 4"
    for c in 1 2 3 4; do
      n=$([ "$c" = 1 ] && echo 100 || echo 200)
      python $R/paired_nll.py $R/gmn-small-mixture-ctrain2-rotflip-cont{4,5}-gmn28-C$c-K1000-${n}ep
    done ;;
  *) echo "usage: $0 [50k|60k]" >&2; exit 2 ;;
esac
