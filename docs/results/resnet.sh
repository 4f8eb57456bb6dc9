#!/usr/bin/env bash
# The GMN paper's residual PReLU networks (`--set arch=resnet`: encoder 16-32-32 channels down
# to a 3x3 map, decoder 32-16-8 back up, a quarter of the parameters of our conv networks) in
# place of ConvEncoder / ConvDecoder, one change each (docs/findings.md section 27):
#   vae:   `vae-resnet` (z 50, 288 features) on gmn28 exactly as vae_budget.sh trains `vae`
#          (6000 steps, episodes of 20 from one class, batches of 10, 1e-3/3e-4/1e-4, seed 0), then
#          continued 18000 steps at 3e-4/1e-4 (seed 1, --init-from); each scored like section 19
#          (the 659-episode bank, C_test 1, with-replacement, K 1000, shots 0, 1, 19); and the
#          first 6000 steps again with rot90/flip classes (--augmentation rot90,flip);
#   gmn:   the mixture-prior gmn-small with rot90/flip classes (section 22's 10k-step recipe, seed
#          0) with --set arch=resnet, scored on the shared 100-episode bank (C_test 1, K 1000),
#          to be paired with docs/results/gmn-small-mixture-ctrain1-rotflip-gmn28-C1-K1000-100ep;
#          the same with z of 50 (--set z_dim=50, the paper's) instead of gmn-small's 16; and the
#          z-16 model continued 10k steps (3e-4/1e-4, seed 1, --init-from; section 22's recipe),
#          paired with the conv model 10k steps on (gmn-small-mixture-ctrain1-rotflip-cont).
# One CPU thread per job. Each step is skipped when its output exists.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/resnet.sh [vae|gmn|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
# train ARGS... --out RUN: train_run with a checkpoint every 500 steps, quietly
train() { train_run "${@:1:$#-2}" --checkpoint-every 500 --quiet "${@: -2}"; }
vae() {
  local V="vae-resnet --protocol gmn28 --batch-size 10 --set-size 20 --classes 1"
  # shellcheck disable=SC2086
  train $V --steps 6000 --lr 1e-3,3e-4,1e-4 --val-every 500 --seed 0 --out runs/vae-resnet-s6000
  # shellcheck disable=SC2086
  train $V --steps 18000 --lr 3e-4,1e-4 --val-every 1000 --seed 1 \
     --init-from runs/vae-resnet-s6000/checkpoint.pt --out runs/vae-resnet-cont
  # shellcheck disable=SC2086
  train $V --steps 6000 --lr 1e-3,3e-4,1e-4 --val-every 500 --seed 0 \
     --augmentation rot90,flip --out runs/vae-resnet-rotflip-s6000
  for r in vae-resnet-s6000:"6000 steps" vae-resnet-cont:"24000 steps" \
           vae-resnet-rotflip-s6000:"rot90/flip classes, 6000 steps"; do
    ev --checkpoint "runs/${r%%:*}/checkpoint.pt" --task nll --protocol gmn28 --classes 1 \
       --samples 1000 --shots 0,1,19 --khat-episodes 0 --label "vae, resnet networks, ${r#*:}" \
       --out "$R/${r%%:*}-gmn28-C1-K1000"
  done; }
gmn() { local z run out sfx
  for z in 16 50; do
    sfx=""; [ $z = 50 ] && sfx=-z50
    run=runs/gmn-mixture-ctrain1-rotflip-resnet$sfx
    out=$R/gmn-small-mixture-ctrain1-rotflip-resnet$sfx-gmn28-C1-K1000-100ep
    train gmn-small --protocol gmn28 --steps 10000 --batch-size 10 --set-size 20 --classes 1 \
       --set prior=mixture --set arch=resnet --set z_dim=$z --augmentation rot90,flip \
       --lr 1e-3,3e-4,1e-4 --val-every 1000 --seed 0 --out $run
    ev --checkpoint $run/checkpoint.pt --task nll --classes 1 --episodes 100 --samples 1000 \
       --khat-episodes 0 --out $out \
       --label "gmn-small mixture prior C_train 1, rot90/flip, resnet networks${sfx/-z/, z }"
    python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-gmn28-C1-K1000-100ep $out
  done
  run=runs/gmn-mixture-ctrain1-rotflip-resnet-cont
  out=$R/gmn-small-mixture-ctrain1-rotflip-resnet-cont-gmn28-C1-K1000-100ep
  train gmn-small --protocol gmn28 --steps 10000 --batch-size 10 --set-size 20 --classes 1 \
     --set prior=mixture --set arch=resnet --augmentation rot90,flip --lr 3e-4,1e-4 \
     --val-every 1000 --seed 1 --init-from runs/gmn-mixture-ctrain1-rotflip-resnet/checkpoint.pt \
     --out $run
  ev --checkpoint $run/checkpoint.pt --task nll --classes 1 --episodes 100 --samples 1000 \
     --khat-episodes 0 --out $out \
     --label "gmn-small mixture prior C_train 1, rot90/flip, resnet networks, 20k steps"
  python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-cont-gmn28-C1-K1000-100ep $out; }
case "${1:-all}" in
  vae) vae ;; gmn) gmn ;; all) vae; gmn ;;
  *) echo "usage: $0 [vae|gmn|all]" >&2; exit 2 ;;
esac
