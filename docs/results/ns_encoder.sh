#!/usr/bin/env bash
# Neural Statistician: is the shared conv encoder what holds min-KL classification back?
# Against ns-medium (docs/results/ns.sh: ns-small widened to channels 32, hidden 256, c 128,
# sample dropout 0.1; 20000 steps x 16 sets of 5; lr 1e-3/3e-4/1e-4; seed 0):
#   ns-medium-depth3:    three convolutions per resolution in the shared encoder (the paper's
#                        Omniglot encoder has three; ns-medium has one), nothing else changed;
# (A second run, "paper-like": depth 3, hidden 1000, c 512 and a scale floor min_scale=0.0067,
# was started beside it and stopped after 900 steps: at ~2.1 steps/s it needed 2.7 h, and it
# still had a loss spike of 6.7e6 nats/item at the floor; docs/findings.md section 2.)
# then 20-way and 5-way classification on the 423 ns28 test classes (1000 tasks; min-KL both
# directions, cosine). Checkpoints of steps 2000, 4000, ... are copied to $run/snaps.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_encoder.sh
# (~1.8 h beside other jobs on the 2 cores; the wall time is in classify.json's budget.)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
train() {
  local run=$1; shift
  [ -f "$run/summary.json" ] && return
  mkdir -p "$run/snaps"
  # shellcheck disable=SC2068
  ppl-fewshot --threads 1 train ns-small --protocol ns28 --steps 20000 --batch-size 16 --set-size 5 \
    --set channels=32 --set sample_dropout=0.1 $@ \
    --lr 1e-3,3e-4,1e-4 --val-every 2000 --checkpoint-every 2000 --quiet --out "$run" \
    $( [ -f "$run/checkpoint.pt" ] && echo --resume ) < /dev/null &
  local pid=$! last="" m
  while kill -0 "$pid" 2> /dev/null; do  # keep each checkpoint (steps 2000, 4000, ...)
    if [ -f "$run/checkpoint.pt" ]; then m=$(stat -c %Y "$run/checkpoint.pt")
      if [ "$m" != "$last" ]; then sleep 5; cp "$run/checkpoint.pt" "$run/snaps/ck-$m.pt"; last=$m; fi
    fi; sleep 20
  done
  wait "$pid"
}
train runs/ns-enc/depth3 --set c_dim=128 --set hidden=256 --set encoder_depth=3 --seed 0
ev() { local out="${*: -1}"; compgen -G "$out/*.json" > /dev/null || ppl-fewshot --threads 1 \
       evaluate --task classify --protocol ns28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
       --methods min-kl,min-kl-reverse,cosine "$@"; }
ev --checkpoint runs/ns-enc/depth3/checkpoint.pt --label "ns-medium, encoder depth 3" \
   --out $R/ns-medium-depth3-ns28-classify
# Learning curves (20-way 1-shot, both KL directions) of the snapshots:
# for s in runs/ns-enc/*/snaps/*.pt; do r=$(basename "$(dirname "$(dirname "$s")")")
#   ppl-fewshot --threads 1 evaluate --checkpoint "$s" --task classify --protocol ns28 --ways 20 \
#     --k-shots 1 --tasks 1000 --methods min-kl,min-kl-reverse --out "runs/ns-enc/ev/$r-$(basename "$s" .pt)"
# done   (each classify.json names its checkpoint's step under training_budget)
