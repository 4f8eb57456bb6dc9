#!/usr/bin/env bash
# The paper-size Neural Statistician trained without divergence (issue #4; docs/findings.md
# section 15), on one GPU. Three runs side by side, all on ns28 with 16 sets of 5 per step,
# encoder depth 3, scale floor 0.0067, sample dropout 0.1, seed 0, STEPS steps:
#   paper:    the paper-size `ns` (c 512, 1000-unit layers, conv channels 64-128-256) with
#             learning rates a third of the paper's (3e-4, 1e-4, 3e-5): at 1e-3 it diverges
#             within tens of steps (gpu_paper_size.sh's run; the CPU probe of section 15);
#   medium:   the ns-medium size of the CPU runs (c 128, 256-unit layers, channels 32-64-128),
#             same learning rates: the control for model size;
#   paper-ln: the paper-size model at the paper's 1e-3, 3e-4, 1e-4 with per-item
#             normalization in every hidden layer (`--set norm=layer`; the paper uses
#             batch normalization).
# `--time-limit BUDGET_S` stops any of them, with a checkpoint, if it runs over. Then each
# exported in float16 and evaluated from that file: classification on the 423 ns28 test
# classes (5/20-way, 1/5-shot, 1000 tasks; min-KL both ways, cosine), with the protocol's
# binarized test inputs and with grey levels (`--binarization none`).
# $OUT receives results.tar.gz (commands, logs, metrics, summaries, evaluation folders).
#
# Usage, on the device machine from the repository root (data copied to .devdata/):
#   OUT=/tmp/o PYTHON=python3 PPL_FEWSHOT_DATA=.devdata STEPS=3000 BUDGET_S=230 \
#     bash docs/results/gpu_ns_stability.sh
# Dry run on a CPU (small models, 40 steps; ~1 min):
#   OUT=/tmp/o TINY=1 DEVICE=cpu PPL_FEWSHOT_DATA=../shared/data bash docs/results/gpu_ns_stability.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu_ns_stability_out}
WORK=${WORK:-runs/gpu-ns-stability}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-3000}
BUDGET_S=${BUDGET_S:-230}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PPL_FEWSHOT_CACHE=${PPL_FEWSHOT_CACHE:-$WORK/cache}
mkdir -p "$OUT" "$WORK"

COMMON="--protocol ns28 --batch-size 16 --set-size 5 --set encoder_depth=3
  --set min_scale=0.0067 --set sample_dropout=0.1"
PAPER="ns"
MEDIUM="ns-small --set channels=32 --set c_dim=128 --set hidden=256"
NS_EVAL="--ways 5,20 --k-shots 1,5 --tasks 1000"
if [ "${TINY:-0}" = "1" ]; then
  COMMON="--protocol ns28 --batch-size 2 --set-size 5 --set encoder_depth=3
    --set min_scale=0.0067 --set sample_dropout=0.1 --train-classes 20 --val-classes 4"
  PAPER="ns-small"
  MEDIUM="ns-small --set hidden=64"
  NS_EVAL="--ways 5 --k-shots 1 --tasks 10"
  STEPS=40
fi

STAGE_DIR=$WORK
# shellcheck source=benchmarks/stage.sh
. benchmarks/stage.sh
# shellcheck source=docs/results/gpu_common.sh
. docs/results/gpu_common.sh
run() {  # run NAME LR MODEL...: train, export, evaluate (binarized and grey test inputs)
  local name=$1 lr=$2; shift 2
  [ -f "$WORK/$name/summary.json" ] || stage "train_$name" "$((BUDGET_S + 120))" \
    "$PY" -m ppl_fewshot.cli train "$@" $COMMON --device "$DEVICE" --lr "$lr" --seed 0 \
    --steps "$STEPS" --time-limit "$BUDGET_S" --val-every "$((STEPS / 5))" \
    --checkpoint-every "$((STEPS / 10))" --quiet --out "$WORK/$name"
  export_fp16 "$name"
  ns_classify "$name" "${name}_classify" "ns $name, lr $lr, $(steps_of "$name") steps on $DEVICE"
}

echo "== start $(date -u +%FT%TZ) device=$DEVICE steps=$STEPS budget=${BUDGET_S}s" | tee -a "$WORK/commands.txt"
gpu_setup "$WORK/commands.txt" || exit 1
# shellcheck disable=SC2086
run paper 3e-4,1e-4,3e-5 $PAPER &
# shellcheck disable=SC2086
run medium 3e-4,1e-4,3e-5 $MEDIUM &
# shellcheck disable=SC2086
run paper-ln 1e-3,3e-4,1e-4 $PAPER --set norm=layer &
wait
echo "== done $(date -u +%FT%TZ)" | tee -a "$WORK/commands.txt"
cat "$WORK/stages.tsv"
tar czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude=cache -C "$WORK" .
ls -la "$OUT"
