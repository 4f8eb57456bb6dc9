#!/usr/bin/env bash
# The urn GMN in models/ trained on with the importance weighted bound (docs/findings.md
# section 39): does a tighter objective, which rewards a guide that covers the posterior,
# lower the NLL table and widen q(z | x, X), beyond what more steps of the plain ELBO do, and
# does the doubly reparameterized gradient (DReG) of the guide help?
# `train`: three continuations of models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt with
#   the same seed, episodes and learning rate (1e-4), 4000 steps each: the ELBO (the control;
#   ~0.27 s a step on one thread), the IWAE bound with 5 draws per conditional
#   (`--objective iwae --particles 5`, ~1.1 s a step) and the same bound with DReG
#   (`--objective iwae-dreg`); the two IWAE runs have wall-clock limits (--time-limit). Each
#   run's checkpoint at step 2000 is copied to RUN-2000.pt as it passes (`snapshot`), so that
#   the three are also compared at 2000 steps;
# `nll`: each checkpoint on the shared 100-episode bank (C_test 1, K 1000, with the urn; ~5 min
#   each); `widened`: the final DReG one from its guide widened 1.5x (`--proposal-scale 1.5`);
# `calibration`: coverage of q(z | x, X) given real contexts (query_calibration.py, ~1 min each);
# `classify`: 5-way 1- and 5-shot likelihood classification on 300 seeded tasks at K 10 and 100
#   (classify_k.py) for the model in models/ and the three continuations (~9 min each);
# `paired`: the comparisons, paired on the same episodes and tasks (paired_nll.py,
#   paired_classify.py).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/iwae.sh [train|nll|widened|calibration|
#   classify|paired|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
URN=models/gmn-small-mixture-ctrain1-rotflip-urn-omniglot.pt
PLAIN=$R/gmn-small-mixture-ctrain1-rotflip-cont10k-urn-urn-dp-gmn28-C1-K1000-100ep
UL="gmn-small mixture prior C_train 1, rot90/flip classes, 40k steps + 10k steps trained with the urn + Dirichlet-process urn (theta fitted; repeats exact)"
OUT=$R/iwae
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
    --checkpoint-every 250 --quiet --batch-size 10 --set-size 20 --seed 9 --steps 4000
    --lr 1e-4 --init-from $URN)
  local -A extra=([elbo]="--objective elbo" [iwae5]="--objective iwae --particles 5
    --time-limit 5400" [dreg5]="--objective iwae-dreg --particles 5 --time-limit 4800")
  for r in $RUNS; do
    [ -f runs/iwae/$r-2000.pt ] || snapshot runs/iwae/$r 2000 &
    # shellcheck disable=SC2086
    train_run "${common[@]}" ${extra[$r]} --out runs/iwae/$r
  done; wait; }
label() {  # label RUN
  case $1 in
    elbo*) echo "$UL + the ELBO at 1e-4" ;;
    iwae5*) echo "$UL + the IWAE bound (5 draws) at 1e-4" ;;
    dreg5*) echo "$UL + the IWAE bound (5 draws, DReG) at 1e-4" ;;
  esac; }
ckpt() { if [[ $1 == *-2000 ]]; then echo "runs/iwae/$1.pt"; else echo "runs/iwae/$1/checkpoint.pt"; fi; }
nll() {
  for r in $RUNS; do for c in $r-2000 $r; do
    bank_nll "$(ckpt $c)" 1000 "$(label $c), $( [[ $c == *-2000 ]] && echo 2000 || echo final) steps" \
      $OUT/$c-K1000
  done; done; }
widened() {
  bank_nll "$(ckpt dreg5)" 1000 "$(label dreg5), final steps, proposal x 1.5" \
    $OUT/dreg5-K1000-proposal1.5 --proposal-scale 1.5; }
cal() {  # cal CHECKPOINT NAME
  if [ -f "$OUT/calibration-$2.json" ]; then echo "kept $OUT/calibration-$2.json"; else
    python $R/query_calibration.py "$1" --out "$OUT/calibration-$2.json"; fi; }
calibration() { for r in $RUNS; do cal "$(ckpt $r)" $r; done; }
cls() {  # cls CHECKPOINT NAME
  for s in 1 5; do
    if [ -f "$OUT/classify-$2-w5-s$s.json" ]; then echo "kept $OUT/classify-$2-w5-s$s.json"; else
      python $R/classify_k.py "$1" --ways 5 --shots $s --tasks 300 --k 10,100 \
        --out "$OUT/classify-$2-w5-s$s.json"; fi
  done; }
classify() { cls $URN urn; for r in $RUNS; do cls "$(ckpt $r)" $r; done; }
paired() {
  for c in elbo-2000 elbo; do python $R/paired_nll.py $PLAIN $OUT/$c-K1000; done
  for r in iwae5 dreg5; do for c in -2000 ""; do
    python $R/paired_nll.py $OUT/elbo$c-K1000 $OUT/$r$c-K1000
  done; done
  python $R/paired_nll.py $OUT/iwae5-2000-K1000 $OUT/dreg5-2000-K1000
  python $R/paired_nll.py $OUT/dreg5-K1000 $OUT/dreg5-K1000-proposal1.5
  for s in 1 5; do for r in $RUNS; do
    python $R/paired_classify.py $OUT/classify-urn-w5-s$s.json $OUT/classify-$r-w5-s$s.json
  done; done; }
case "${1:-all}" in
  train) train ;;
  nll) nll ;;
  widened) widened ;;
  calibration) calibration ;;
  classify) classify ;;
  paired) paired ;;
  all) train; nll; widened; calibration; classify; paired ;;
  *) echo "usage: $0 [train|nll|widened|calibration|classify|paired|all]" >&2; exit 2 ;;
esac
