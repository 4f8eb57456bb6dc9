#!/usr/bin/env bash
# C_train 2 against C_train 1 from the same 40k-step weights (docs/findings.md section 26): the
# zoo's augmented mixture GMN (runs/gmn-mixture-ctrain1-rotflip-cont3, 40k steps, C_train 1)
# continued 10k steps on episodes of two characters (--classes 2; the paper trains all its table-1
# rows so) with the recipe, seed and schedule of more_steps.sh's fourth C_train 1 continuation
# (Adam 3e-4 then 1e-4, seed 4), so the two 50k models differ only in C_train. Both are scored on
# the shared banks: C_test 1 (100 episodes) and C_test 2, 3, 4 (200 episodes each),
# with-replacement, K 1000, every shot column. Needs runs/gmn-mixture-ctrain1-rotflip-cont4
# (`bash docs/results/more_steps.sh gmn`) for the C_train 1 side. One CPU thread; ~30-50 min of
# training, ~3-4 min per table; every output is skipped when it exists and an interrupted
# training resumes.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ctrain2.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results RUN=runs/gmn-mixture-ctrain2-rotflip-cont4
[ -f $RUN/summary.json ] || ppl-fewshot --threads 1 train gmn-small --protocol gmn28 \
  --batch-size 10 --set-size 20 --val-every 1000 --classes 2 --set prior=mixture \
  --augmentation rot90,flip --seed 4 --init-from runs/gmn-mixture-ctrain1-rotflip-cont3/checkpoint.pt \
  --steps 10000 --lr 3e-4,1e-4 --checkpoint-every 500 --quiet --out $RUN \
  $( [ -f $RUN/checkpoint.pt ] && echo --resume ) < /dev/null
ev() { local out="${*: -1}"; compgen -G "$out/*.json" > /dev/null || ppl-fewshot --threads 1 \
       evaluate "$@"; }
for side in ctrain2 ctrain1; do
  C=runs/gmn-mixture-$side-rotflip-cont4/checkpoint.pt T=$R/gmn-small-mixture-$side-rotflip-cont4
  # a training still running has a checkpoint.pt but no summary.json yet: wait for it (2 h at most)
  for _ in $(seq 120); do [ -f ${C%/*}/summary.json ] && break; sleep 60; done
  [ -f ${C%/*}/summary.json ] || { echo "${C%/*} has not finished training" >&2; exit 1; }
  L="gmn-small mixture prior C_train ${side#ctrain}, rot90/flip classes, 50k steps"
  [ $side = ctrain2 ] && L="$L (40k C_train 1 + 10k C_train 2)"
  [ $side = ctrain2 ] && ev --checkpoint $C --label "$L" --task nll --classes 1 --episodes 100 \
    --samples 1000 --khat-episodes 0 --out $T-gmn28-C1-K1000-100ep
  for c in 2 3 4; do
    ev --checkpoint $C --label "$L" --task nll --classes $c --episodes 200 --samples 1000 \
       --khat-episodes 0 --out $T-gmn28-C$c-K1000-200ep
  done
done
