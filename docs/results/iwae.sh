#!/usr/bin/env bash
# The urn GMN in models/ trained on with the importance weighted bound (docs/findings.md
# sections 39-41): does a tighter objective, which rewards a guide that covers the posterior,
# lower the NLL table and widen q(z | x, X), beyond what more steps of the plain ELBO do, and
# does the doubly reparameterized gradient (DReG) of the guide help?
# `train`: continuations of models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt with the
#   same seed, episodes and learning rate (1e-4, constant): 4000 steps each of the ELBO (the
#   control; ~0.3 s a step on one thread), of the IWAE bound with 5 draws per conditional
#   (`--objective iwae --particles 5`) and of the same bound with DReG (`--objective
#   iwae-dreg`; each ~1.1 s a step alone, 1.3-1.8 beside two other jobs). Every run's checkpoint
#   at step 2000 is copied to runs/iwae/RUN-2000.pt (`snapshot`). (Each step's episodes and
#   draws are seeded by (seed, step) and the rate is constant, so the first 2000 steps of a
#   4000-step run are a 2000-step run; the IWAE runs were stopped at 2690 / 2290 steps in one
#   session and resumed from their 2500 / 2250-step checkpoints in the next: `train --resume`.)
# `nll`: every run at 2000 and 4000 steps on the shared 100-episode bank (C_test 1, K 1000,
#   with the urn; ~4-5 min each alone); `widened`: one snapshot from its guide widened 1.5x
#   (`--proposal-scale 1.5`); `ais`: the IWAE and ELBO snapshots and the model in models/ by
#   annealed importance sampling (K 8, 100 steps, ~12 min each alone); `fit`: every 4000-step
#   run from a proposal scale fitted on 20 other episodes (`--proposal-scale fit`, ~200 s, then
#   the bank, ~230 s);
# `exported nll|mnist|ctest|table2`: the 4000-step IWAE run exported to models/ on the
#   659-episode bank (~27 min; also from the fitted proposal x 1.5), on MNIST (table 3 and
#   10-way classification, ~17 min; and the ELBO run's MNIST NLL as the control), at C_test 2-4
#   (200 episodes each) and in table 2 (1000 tasks per cell, ~20-25 min per shot);
# `snr`: the gradient's signal-to-noise ratio by objective and K (gradient_snr.py, section 41);
# `exch`: log p(X) over orders of a set (gmn_exchangeability.py);
# `calibration`: coverage of q(z | x, X) given real contexts (query_calibration.py, ~1 min each);
# `classify`: 5-way 1- and 5-shot likelihood classification on 300 seeded tasks at K 10 and 100
#   (classify_k.py) for the model in models/, the snapshots and the 4000-step IWAE run (~9 min
#   each);
# `paired`: the comparisons, paired on the same episodes and tasks (paired_nll.py,
#   paired_classify.py).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/iwae.sh [train|nll|widened|ais|fit|
#   exported nll|exported mnist|exported ctest|exported table2|snr|exch|calibration|classify|
#   paired|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
URN=models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt
PLAIN=$R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-C1-K1000-100ep
UL="gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps + 10k steps trained with the urn + Dirichlet-process urn (theta fitted; repeats exact)"
OUT=$R/iwae
EXP=models/gmn-small-mixture-ctrain1-rotflip-urn-iwae-omniglot.pt  # the 4000-step IWAE run
RUNS=${RUNS:-elbo iwae5 dreg5}  # RUNS=elbo bash docs/results/iwae.sh nll: that run only
snapshot() {  # snapshot RUN STEP: copy RUN/checkpoint.pt to RUN-STEP.pt when it holds STEP
  local last  # (torch is loaded only once the run's log is near STEP)
  until [ -f "$1-$2.pt" ]; do
    last=$(tail -n 1 "$1/metrics.jsonl" 2> /dev/null | sed 's/.*"step": \([0-9]*\).*/\1/')
    if [ "${last:-0}" -ge $(($2 - 10)) ] 2> /dev/null && [ "$(python -c "import sys, torch
print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['step'])" \
        "$1/checkpoint.pt" 2> /dev/null)" = "$2" ]; then cp "$1/checkpoint.pt" "$1-$2.pt"; fi
    sleep 5
  done; }
train() {
  local common=(gmn-small --protocol gmn28 --classes 1 --augmentation rot90,flip --val-every 500
    --checkpoint-every 250 --quiet --batch-size 10 --set-size 20 --seed 9 --lr 1e-4
    --init-from $URN)
  local -A extra=([elbo]="--objective elbo --steps 4000"
    [iwae5]="--objective iwae --particles 5 --steps 4000"
    [dreg5]="--objective iwae-dreg --particles 5 --steps 4000")
  for r in $RUNS; do
    [ -f runs/iwae/$r-2000.pt ] || snapshot runs/iwae/$r 2000 &
    # shellcheck disable=SC2086
    train_run "${common[@]}" ${extra[$r]} --out runs/iwae/$r
  done; wait; }
label() {  # label CHECKPOINT-NAME
  local steps=2000
  [[ $1 == *-2000 ]] || steps=4000
  case $1 in
    elbo*) echo "$UL + $steps steps of the ELBO at 1e-4" ;;
    iwae5*) echo "$UL + $steps steps of the IWAE bound (5 draws) at 1e-4" ;;
    dreg5*) echo "$UL + $steps steps of the IWAE bound (5 draws, DReG) at 1e-4" ;;
  esac; }
ckpt() { if [[ $1 == *-2000 ]]; then echo "runs/iwae/$1.pt"; else echo "runs/iwae/$1/checkpoint.pt"; fi; }
nll() {
  for r in $RUNS; do
    bank_nll "$(ckpt $r-2000)" 1000 "$(label $r-2000)" $OUT/$r-2000-K1000
    bank_nll "$(ckpt $r)" 1000 "$(label $r)" $OUT/$r-K1000
  done; }
WIDE=${WIDE:-dreg5-2000}  # the snapshot scored from its widened guide
widened() {
  bank_nll "$(ckpt $WIDE)" 1000 "$(label $WIDE), proposal x 1.5" $OUT/$WIDE-K1000-proposal1.5 \
    --proposal-scale 1.5; }
ais() {  # annealed importance sampling (K 8, 100 steps; ~12 min each alone): how much of a gain
  # is the model's, not the estimator's; the exported 4000-step IWAE model too (paired with
  # the urn model's AIS of gmn_urn.sh ais)
  for c in iwae5-2000 elbo-2000; do
    ev --checkpoint "$(ckpt $c)" --task nll --protocol gmn28 --classes 1 --episodes 100 \
      --samples 8 --ais-steps 100 --khat-episodes 0 --label "$(label $c), AIS" \
      --out $OUT/$c-AIS100-K8
  done
  ev --checkpoint $EXP --task nll --protocol gmn28 --classes 1 --episodes 100 --samples 8 \
    --ais-steps 100 --khat-episodes 0 --label "$(label iwae5), AIS" --out $OUT/iwae5-AIS100-K8; }
cal() {  # cal CHECKPOINT NAME
  if [ -f "$OUT/calibration-$2.json" ]; then echo "kept $OUT/calibration-$2.json"; else
    python $R/query_calibration.py "$1" --out "$OUT/calibration-$2.json"; fi; }
fit() {  # the proposal scale fitted at K 1000 on 20 other episodes of the test classes (seed 1;
  # the zoo lineage's "val" classes are rotated or mirrored copies of training characters, and
  # were trained on under earlier seeds), then the bank scored from it
  for r in $RUNS; do
    ev --checkpoint "$(ckpt $r)" --task nll --classes 1 --episodes 100 --samples 1000 \
      --khat-episodes 0 --proposal-scale fit --fit-split test --label "$(label $r), fitted proposal" \
      --out $OUT/$r-K1000-fitted
  done; }
exported() {  # exported [nll|mnist|ctest|table2]: the 4000-step IWAE run in the model zoo, on the
  # whole bank (659 episodes, K 1000), on MNIST (table 3: 200 episodes, K 1000; 10-way tasks), at
  # C_test 2-4 (200 episodes each) and in table 2
  [ -f $EXP ] || ppl-fewshot export --checkpoint runs/iwae/iwae5/checkpoint.pt --out $EXP
  if [ "${1:-nll}" = table2 ]; then  # 5- and 20-way 1- and 5-shot on the 1000 seeded tasks per
    # cell of every GMN row (gmn_urn.sh transfer classify: likelihood K 10, cosine)
    for k in 1 5; do
      ev --checkpoint $EXP --label "$(label iwae5)" --task classify --protocol gmn28 --ways 5,20 \
        --k-shots $k --tasks 1000 --classify-samples 10 --methods likelihood,cosine \
        --out $OUT/iwae5-gmn28-classify-${k}shot
    done
  elif [ "${1:-nll}" = ctest ]; then  # C_test 2-4, 200 episodes each, K 1000
    for c in 2 3 4; do
      ev --checkpoint $EXP --task nll --classes $c --episodes 200 --samples 1000 \
        --khat-episodes 0 --label "$(label iwae5)" --out $OUT/iwae5-gmn28-C$c-K1000-200ep
    done
  elif [ "${1:-nll}" = nll ]; then
    ev --checkpoint $EXP --task nll --classes 1 --episodes 659 --samples 1000 --khat-episodes 0 \
      --label "$(label iwae5)" --out $OUT/iwae5-gmn28-C1-K1000
    # from the proposal the fits of section 40 chose (x 1.5; `fit` above and its default split)
    ev --checkpoint $EXP --task nll --classes 1 --episodes 659 --samples 1000 --khat-episodes 0 \
      --proposal-scale 1.5 --label "$(label iwae5), proposal x 1.5 (fitted)" \
      --out $OUT/iwae5-gmn28-C1-K1000-proposal1.5
  else
    ev --checkpoint $EXP --label "$(label iwae5)" --task transfer --samples 1000 --episodes 200 \
      --k-shots 1,5 --tasks 1000 --classify-samples 10 --methods likelihood,cosine \
      --out $OUT/iwae5-mnist28
    ev --checkpoint "$(ckpt elbo)" --task nll --protocol mnist28 --classes 1 --episodes 200 \
      --samples 1000 --khat-episodes 0 --label "$(label elbo)" --out $OUT/elbo-mnist28  # control
  fi; }
snr() {  # the gradient's signal-to-noise ratio per objective and K, for the guide's, the
  # model's and the shared parameters, on two bank episodes, 100 draws (~15 min each alone);
  # at K 5 also on a training step's batch of 10 episodes
  local s=$OUT/gradient-snr
  [ -f $s-urn.json ] || python $R/gradient_snr.py $URN --draws 100 --out $s-urn.json
  [ -f $s-iwae5.json ] || python $R/gradient_snr.py $EXP --draws 100 --out $s-iwae5.json
  [ -f $s-urn-10ep.json ] || python $R/gradient_snr.py $URN --episodes 10 \
    --objectives elbo:5,iwae:5,iwae-dreg:5 --draws 100 --out $s-urn-10ep.json; }
exch() {  # how far from exchangeable: log p(X) over 6 orders of the bank's first 15 sets, against
  # 6 repeats in one order (gmn_exchangeability.py, ~2 min each), for the zoo model, the urn
  # model and the IWAE model
  [ -f $R/gmn-exchangeability-urn/exchangeability.json ] || python $R/gmn_exchangeability.py \
    $R/gmn-exchangeability-urn models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt $URN $EXP \
    --episodes 15 --orders 6 --particles 100; }
calibration() { for r in $RUNS; do cal "$(ckpt $r-2000)" $r-2000; done; }
cls() {  # cls CHECKPOINT NAME
  for s in 1 5; do
    if [ -f "$OUT/classify-$2-w5-s$s.json" ]; then echo "kept $OUT/classify-$2-w5-s$s.json"; else
      python $R/classify_k.py "$1" --ways 5 --shots $s --tasks 300 --k 10,100 \
        --out "$OUT/classify-$2-w5-s$s.json"; fi
  done; }
classify() {
  cls $URN urn
  for r in $RUNS; do cls "$(ckpt $r-2000)" $r-2000; done
  cls "$(ckpt iwae5)" iwae5; }  # the 4000-step IWAE run (the model exported to models/)
paired() {
  for c in elbo-2000 elbo; do python $R/paired_nll.py $PLAIN $OUT/$c-K1000; done
  for r in iwae5 dreg5; do python $R/paired_nll.py $OUT/elbo-2000-K1000 $OUT/$r-2000-K1000; done
  python $R/paired_nll.py $OUT/iwae5-2000-K1000 $OUT/dreg5-2000-K1000
  python $R/paired_nll.py $OUT/$WIDE-K1000 $OUT/$WIDE-K1000-proposal1.5
  python $R/paired_nll.py $OUT/elbo-2000-AIS100-K8 $OUT/iwae5-2000-AIS100-K8
  for r in iwae5 dreg5; do  # 4000 steps: against the ELBO's 4000 and their own 2000
    python $R/paired_nll.py $OUT/elbo-K1000 $OUT/$r-K1000
    python $R/paired_nll.py $OUT/$r-2000-K1000 $OUT/$r-K1000
  done
  python $R/paired_nll.py $OUT/iwae5-K1000 $OUT/dreg5-K1000
  for r in $RUNS; do python $R/paired_nll.py $OUT/$r-K1000 $OUT/$r-K1000-fitted; done
  python $R/paired_nll.py $OUT/elbo-K1000-fitted $OUT/iwae5-K1000-fitted
  local u=$R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn  # the urn model's own tables
  python $R/paired_nll.py $u-urn-dp-gmn28-C1-K1000 $OUT/iwae5-gmn28-C1-K1000
  for c in 2 3 4; do
    python $R/paired_nll.py $u-urn-dp-gmn28-C$c-K1000-200ep $OUT/iwae5-gmn28-C$c-K1000-200ep
  done
  for r in iwae5 elbo; do python $R/paired_nll.py $u-mnist28 $OUT/$r-mnist28; done
  for s in 1 5; do for r in $RUNS; do
    python $R/paired_classify.py $OUT/classify-urn-w5-s$s.json $OUT/classify-$r-2000-w5-s$s.json
  done
  python $R/paired_classify.py $OUT/classify-urn-w5-s$s.json $OUT/classify-iwae5-w5-s$s.json
  python $R/paired_classify.py $OUT/classify-elbo-2000-w5-s$s.json $OUT/classify-iwae5-w5-s$s.json
  done
  local a=$R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-C1-AIS100-K8-100ep  # section 41
  python $R/paired_nll.py $a $OUT/iwae5-AIS100-K8
  for c in iwae5-2000-AIS100-K8 elbo-2000-AIS100-K8 iwae5-K1000 iwae5-K1000-fitted; do
    python $R/paired_nll.py $OUT/$c $OUT/iwae5-AIS100-K8
  done
  python $R/paired_nll.py $OUT/iwae5-gmn28-C1-K1000 $OUT/iwae5-gmn28-C1-K1000-proposal1.5; }
case "${1:-all}" in
  train) train ;;
  nll) nll ;;
  widened) widened ;;
  ais) ais ;;
  fit) fit ;;
  exported) exported "${2:-nll}" ;;
  snr) snr ;;
  exch) exch ;;
  calibration) calibration ;;
  classify) classify ;;
  paired) paired ;;
  all) train; nll; widened; ais; fit; exported nll; exported mnist; exported ctest; exported table2; snr; exch; calibration; classify; paired ;;
  *) echo "usage: $0 [train|nll|widened|ais|fit|exported nll|mnist|ctest|table2|snr|exch|calibration|"
    echo "  classify|paired|all]" >&2
    exit 2 ;;
esac
