#!/usr/bin/env bash
# Where GMN's 0-shot gap comes from (docs/findings.md sections 28-29). The experiments:
#   finetune:  the zoo's augmented mixture GMN (40k steps, runs/gmn-mixture-ctrain1-rotflip-cont3,
#              from `bash docs/results/more_steps.sh gmn`) continued 5000 steps on sets of ONE
#              item (--set-size 1, 200 sets per step, Adam 3e-4 then 1e-4, seed 6): every term of
#              the objective is then the 0-shot one, which the episode objective weights 1/20.
#              Scored on the shared 100-episode bank (C_test 1, K 1000), paired with the 40k model.
#   vae-small: `vae-small` (gmn-small's networks and z of 16, no context) trained like
#              vae_budget.sh trains `vae` (episodes of 20 from one class, batches of 10,
#              1e-3/3e-4/1e-4, seed 0) for 12000 steps; scored like section 19 (659-episode bank,
#              shots 0, 1, 19) and at 0 shots on the 100-episode bank, paired with the GMNs there;
#              section 27's resnet VAEs (`bash docs/results/resnet.sh vae`: rot90/flip 6k steps,
#              plain 24k) at 0 shots on the same bank, paired with the paper-size GMNs below
#              (run after gmn-paper and finetune-paper).
#   gmn-paper: the paper-size `gmn` (z 50, controller state 200) with the paper's residual
#              networks (--set arch=resnet, channels 16, 288 features), mixture prior, rot90/flip
#              classes, 10000 steps of section 27's gmn-small recipe (seed 0); scored on the
#              100-episode bank and paired with the resnet gmn-small of the same recipe
#              (`bash docs/results/resnet.sh gmn`).
#   finetune-paper: that paper-size GMN continued like `finetune` (5000 steps on sets of one).
#   sizes:     that paper-size GMN continued 5000 steps on episodes of 20 against episodes of
#              1-20 items (see the function).
#   weights, singletons, more, small (section 29): the 0-shot term weighted more, or trained on
#              every item as a set of one (--singleton-weight), on the paper-size GMN and on
#              gmn-small (see the functions).
# One CPU thread each, beside other jobs (~12, ~25, ~55, ~20, 2 x ~20 min of training for the
# section 28 modes; 2 x ~23 (weights), 2 x ~40 (singletons), ~22 + ~40 (more) and ~14 + ~23 min
# (small) for section 29's). Each step is skipped when its output exists.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/zero_shot.sh \
#   [finetune|vae-small|gmn-paper|finetune-paper|sizes|weights [W...]|singletons [L...]|
#    more TAG [ARGS...]|small TAG [ARGS...]|scratch TAG [ARGS...]|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# the paper-size GMN with the paper's residual networks; the mixture-prior, rot90/flip, C_train 1
# recipe every GMN here trains with
PAPER="gmn --set arch=resnet --set channels=16 --set hidden=288"
MIX="--protocol gmn28 --classes 1 --set prior=mixture --augmentation rot90,flip --val-every 1000
     --checkpoint-every 500 --quiet"
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
# nll100 CKPT LABEL OUT [ARGS...]: the shared 100-episode bank, C_test 1, K 1000
nll100() { local ck=$1 label=$2 out=$3; shift 3
  ev --checkpoint "$ck" --task nll --classes 1 --episodes 100 --samples 1000 --khat-episodes 0 \
     "$@" --label "$label" --out "$out"; }
# ft MODEL_ARGS INIT RUN OUT LABEL BASE: continue INIT 5000 steps on sets of one item into RUN,
#   score it into OUT and pair it with BASE (INIT's own table)
ft() { local args=$1 init=$2 run=$3 out=$4 label=$5 base=$6
  # shellcheck disable=SC2086
  train_run $args $MIX --batch-size 200 --set-size 1 --seed 6 --init-from "$init" --steps 5000 \
    --lr 3e-4,1e-4 --out "$run"
  nll100 "$run/checkpoint.pt" "$label" "$out"
  python $R/paired_nll.py "$base" "$out"; }
finetune() {
  ft gmn-small runs/gmn-mixture-ctrain1-rotflip-cont3/checkpoint.pt runs/gmn-zeroshot-ft \
    $R/gmn-small-mixture-ctrain1-rotflip-t1ft-gmn28-C1-K1000-100ep \
    "gmn-small mixture C_train 1 rot90/flip, 40k + 5k steps on sets of one (0-shot term only)" \
    $R/gmn-small-mixture-ctrain1-rotflip-cont3-gmn28-C1-K1000-100ep; }
finetune_paper() {
  ft "$PAPER" \
    runs/gmn-paper-resnet-mixture-ctrain1-rotflip/checkpoint.pt runs/gmn-paper-resnet-zeroshot-ft \
    $R/gmn-resnet-mixture-ctrain1-rotflip-t1ft-gmn28-C1-K1000-100ep \
    "gmn (paper size) mixture C_train 1 rot90/flip, resnet, 10k + 5k steps on sets of one" \
    $R/gmn-resnet-mixture-ctrain1-rotflip-gmn28-C1-K1000-100ep; }
vae_small() { local run=runs/vae-small-s12000 out=$R/vae-small-s12000-gmn28-C1-K1000-100ep g
  train_run vae-small --protocol gmn28 --steps 12000 --batch-size 10 --set-size 20 --classes 1 \
    --lr 1e-3,3e-4,1e-4 --val-every 1000 --checkpoint-every 500 --seed 0 --quiet --out $run
  ev --checkpoint $run/checkpoint.pt --task nll --protocol gmn28 --classes 1 \
     --sampler with-replacement --samples 1000 --shots 0,1,19 --khat-episodes 0 \
     --label "vae-small, 12000 steps" --out $R/vae-small-s12000-gmn28-C1-K1000
  nll100 $run/checkpoint.pt "vae-small, 12000 steps" $out --shots 0
  for g in ctrain1-rotflip-cont3 ctrain1-rotflip-t1ft ctrain1-rotflip-resnet; do
    python $R/paired_nll.py $out $R/gmn-small-mixture-$g-gmn28-C1-K1000-100ep
  done
  # the resnet VAEs of section 27 (resnet.sh vae) on the same bank, beside the paper-size GMNs
  nll100 runs/vae-resnet-rotflip-s6000/checkpoint.pt "vae, resnet networks, rot90/flip classes, 6000 steps" \
    $R/vae-resnet-rotflip-s6000-gmn28-C1-K1000-100ep --shots 0
  nll100 runs/vae-resnet-cont/checkpoint.pt "vae, resnet networks, 24000 steps" \
    $R/vae-resnet-cont-gmn28-C1-K1000-100ep --shots 0
  for g in resnet-mixture-ctrain1-rotflip resnet-mixture-ctrain1-rotflip-t1ft; do
    python $R/paired_nll.py $R/vae-resnet-rotflip-s6000-gmn28-C1-K1000-100ep \
      $R/gmn-$g-gmn28-C1-K1000-100ep
  done; }
# paper10k RUN OUT LABEL [ARGS...]: the paper-size GMN trained 10000 steps from scratch with
#   section 27's gmn-small recipe (seed 0) and the objective options ARGS into RUN, scored into OUT
paper10k() { local run=$1 out=$2 label=$3; shift 3
  # shellcheck disable=SC2086
  train_run $PAPER $MIX --steps 10000 --batch-size 10 --set-size 20 --lr 1e-3,3e-4,1e-4 --seed 0 \
    "$@" --out "$run"
  nll100 "$run/checkpoint.pt" "$label" "$out"; }
gmn_paper() { local out=$R/gmn-resnet-mixture-ctrain1-rotflip-gmn28-C1-K1000-100ep
  paper10k runs/gmn-paper-resnet-mixture-ctrain1-rotflip $out \
    "gmn (paper size) mixture prior C_train 1, rot90/flip, resnet networks"
  python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-resnet-gmn28-C1-K1000-100ep $out; }
# scratch TAG [ARGS...]: like gmn-paper, with the objective options ARGS from the first step
#   (e.g. `scratch s1 --singleton-weight 1`), paired with gmn-paper's plain 10k steps and with
#   the continuation of the same tag (10k plain + 5k with ARGS, when it exists)
scratch() { local tag=$1; shift
  local out=$R/gmn-resnet-mixture-ctrain1-rotflip-scratch-$tag-gmn28-C1-K1000-100ep
  local cont=$R/gmn-resnet-mixture-ctrain1-rotflip-cont-$tag-gmn28-C1-K1000-100ep
  paper10k runs/gmn-paper-resnet-scratch-$tag $out \
    "gmn (paper size) mixture C_train 1 rot90/flip, resnet, 10k steps from scratch, $tag" "$@"
  python $R/paired_nll.py $R/gmn-resnet-mixture-ctrain1-rotflip-gmn28-C1-K1000-100ep $out
  if have_result "$cont"; then python $R/paired_nll.py "$cont" $out; fi; }
# cont5k MODEL_ARGS INIT SEED SIZE RUN OUT LABEL [ARGS...]: INIT continued 5000 steps on sets of
#   SIZE items (batches of 10, 3e-4 / 1e-4) with the objective options ARGS into RUN, scored
#   into OUT
cont5k() { local model=$1 init=$2 seed=$3 size=$4 run=$5 out=$6 label=$7; shift 7
  # shellcheck disable=SC2086
  train_run $model $MIX --batch-size 10 --set-size "$size" --seed "$seed" --steps 5000 \
    --lr 3e-4,1e-4 --init-from "$init" "$@" --out "$run"
  nll100 "$run/checkpoint.pt" "$label" "$out"; }
# sizes: the paper-size GMN continued 5000 steps (3e-4 / 1e-4, seed 7) on episodes of 20, and
#   the same on episodes of 1 to 20 items (each set draws its size; item t is then in a set
#   with probability (20 - t) / 20, so the early conditionals weigh more), paired
sizes() { local n out
  for n in 20 1-20; do
    out=$R/gmn-resnet-mixture-ctrain1-rotflip-cont-t$n-gmn28-C1-K1000-100ep
    cont5k "$PAPER" runs/gmn-paper-resnet-mixture-ctrain1-rotflip/checkpoint.pt 7 $n \
      runs/gmn-paper-resnet-cont-t$n $out \
      "gmn (paper size) mixture C_train 1 rot90/flip, resnet, 10k + 5k steps on sets of $n"
  done
  python $R/paired_nll.py $R/gmn-resnet-mixture-ctrain1-rotflip-cont-t20-gmn28-C1-K1000-100ep $out; }
# cont TAG DESCRIPTION ARGS...: the paper-size GMN continued like sizes' episodes of 20 (seed 7,
#   the same episodes) with ARGS, scored and paired with the plain continuation (run sizes first)
cont() { local tag=$1 what=$2; shift 2
  local out=$R/gmn-resnet-mixture-ctrain1-rotflip-cont-$tag-gmn28-C1-K1000-100ep
  cont5k "$PAPER" runs/gmn-paper-resnet-mixture-ctrain1-rotflip/checkpoint.pt 7 20 \
    runs/gmn-paper-resnet-cont-$tag $out \
    "gmn (paper size) mixture C_train 1 rot90/flip, resnet, 10k + 5k steps, $what" "$@"
  python $R/paired_nll.py $R/gmn-resnet-mixture-ctrain1-rotflip-cont-t20-gmn28-C1-K1000-100ep $out; }
# weights [W...]: the 0-shot term weighted W (--position-weights W,1; W = 5 and 20 by default:
#   21% and 51% of the objective instead of 5%, still on one item per episode)
weights() { local w; for w in ${1:-5 20}; do
  cont "w$w" "0-shot term weighted $w" --position-weights "$w,1"; done; }
# singletons [L...]: every item of the batch also scored as a set of one, weight L
#   (--singleton-weight L; L = 1 and 0.25 by default: the 0-shot term on 200 items a step
#   instead of 10, in all about as much weight as W = 20 and 5)
singletons() { local l; for l in ${1:-1 0.25}; do
  cont "s$l" "every item also as a set of one, weight $l" --singleton-weight "$l"; done; }
# more TAG [ARGS...]: the continuation TAG (t20, s1, ...) continued another 5000 steps (seed 8)
#   with ARGS (its own objective options), scored and, unless it is t20, paired with t20's 20k
#   steps (run `more t20` first)
more() { local tag=$1; shift
  local out=$R/gmn-resnet-mixture-ctrain1-rotflip-cont-$tag-20k-gmn28-C1-K1000-100ep
  cont5k "$PAPER" runs/gmn-paper-resnet-cont-$tag/checkpoint.pt 8 20 runs/gmn-paper-resnet-cont-$tag-20k \
    $out "gmn (paper size) mixture C_train 1 rot90/flip, resnet, 10k + 5k + 5k steps, $tag" "$@"
  python $R/paired_nll.py $R/gmn-resnet-mixture-ctrain1-rotflip-cont-$tag-gmn28-C1-K1000-100ep $out
  if [ "$tag" != t20 ]; then
    python $R/paired_nll.py $R/gmn-resnet-mixture-ctrain1-rotflip-cont-t20-20k-gmn28-C1-K1000-100ep $out
  fi; }
# small TAG [ARGS...]: the zoo's gmn-small (40k steps, as in finetune) continued 5000 steps
#   (seed 7) with ARGS; `small t20` (plain) first, then e.g. `small s1 --singleton-weight 1`,
#   paired with it
small() { local tag=$1; shift
  local out=$R/gmn-small-mixture-ctrain1-rotflip-cont3-$tag-gmn28-C1-K1000-100ep
  cont5k gmn-small runs/gmn-mixture-ctrain1-rotflip-cont3/checkpoint.pt 7 20 runs/gmn-small-zs-$tag \
    $out "gmn-small mixture C_train 1 rot90/flip, 40k + 5k steps, $tag" "$@"
  python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-cont3-gmn28-C1-K1000-100ep $out
  if [ "$tag" != t20 ]; then
    python $R/paired_nll.py $R/gmn-small-mixture-ctrain1-rotflip-cont3-t20-gmn28-C1-K1000-100ep $out
  fi; }
case "${1:-all}" in
  finetune) finetune ;;
  vae-small) vae_small ;;
  gmn-paper) gmn_paper ;;
  finetune-paper) finetune_paper ;;
  sizes) sizes ;;
  weights) weights "${2:-}" ;;
  singletons) singletons "${2:-}" ;;
  more) shift; more "$@" ;;
  small) shift; small "$@" ;;
  scratch) shift; scratch "$@" ;;
  all) finetune; gmn_paper; finetune_paper; vae_small; sizes; weights; singletons
       more t20; more s1 --singleton-weight 1; small t20; small s1 --singleton-weight 1
       scratch s1 --singleton-weight 1 ;;
  *) echo "usage: $0 [finetune|vae-small|gmn-paper|finetune-paper|sizes|weights [W...]|singletons [L...]|more TAG [ARGS...]|small TAG [ARGS...]|scratch TAG [ARGS...]|all]" >&2
     exit 2 ;;
esac
