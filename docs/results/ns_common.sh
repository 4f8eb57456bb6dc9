# Shared by the Neural Statistician retraining scripts (ns_recipe.sh, ns_encoder.sh); sourced
# from the repository root. Sources docs/results/common.sh (ev, train_run, have_result).
# train RUN ARGS...: ns-medium (ns-small widened: channels 32, hidden 256, sample dropout 0.1;
#   20000 steps x 16 sets of 5 on ns28; lr 1e-3/3e-4/1e-4) with ARGS added (train_run: skipped
#   when RUN has finished, resumed when RUN has a checkpoint); copies each checkpoint (steps
#   2000, 4000, ...) to RUN/snaps (keep_snaps).
# classify ARGS... --out DIR: ev of 5- and 20-way, 1- and 5-shot classification on the ns28 test
#   classes (1000 tasks; min-KL in both directions, cosine), skipped when DIR already holds
#   results (ARGS may override these settings).
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
train() {
  local run=$1; shift
  [ -f "$run/summary.json" ] && return
  mkdir -p "$run/snaps"
  # shellcheck disable=SC2068
  train_run ns-small --protocol ns28 --steps 20000 --batch-size 16 --set-size 5 \
    --set channels=32 --set hidden=256 --set sample_dropout=0.1 $@ \
    --lr 1e-3,3e-4,1e-4 --val-every 2000 --checkpoint-every 2000 --quiet --out "$run" &
  keep_snaps "$run" $!
}
# keep_snaps RUN PID: while training PID runs, copy each new RUN/checkpoint.pt to RUN/snaps
keep_snaps() {
  local run=$1 pid=$2 last="" m
  while kill -0 "$pid" 2> /dev/null; do
    if [ -f "$run/checkpoint.pt" ]; then m=$(stat -c %Y "$run/checkpoint.pt")
      if [ "$m" != "$last" ]; then sleep 5; cp "$run/checkpoint.pt" "$run/snaps/ck-$m.pt"; last=$m; fi
    fi; sleep 20
  done
  wait "$pid"
}
classify() { ev --task classify --protocol ns28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
             --methods min-kl,min-kl-reverse,cosine "$@"; }
# ev_all CKPT LABEL NAME: classify on ns28 and on Omniglot -> MNIST (mnist28-t10k, 10-way), each
#   with the protocol's binarized test inputs and with grey levels (docs/findings.md section 14),
#   into docs/results/NAME-ns28-classify[-grey] and docs/results/NAME-mnist28-t10k[-grey].
ev_all() {
  local ck=$1 label=$2 name=$3 b sfx lab
  for b in dynamic none; do
    if [ $b = none ]; then sfx=-grey lab=", grey test inputs"; else sfx="" lab=""; fi
    classify --checkpoint "$ck" --binarization $b --label "$label$lab" \
       --out "docs/results/$name-ns28-classify$sfx"
    classify --checkpoint "$ck" --protocol mnist28-t10k --ways 10 --binarization $b \
       --label "$label$lab" --out "docs/results/$name-mnist28-t10k$sfx"
  done
}
