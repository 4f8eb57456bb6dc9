#!/usr/bin/env bash
# Paper-size models on one GPU, two trainings side by side (issues #4 and #5).
#   ns:  the Neural Statistician at the paper's Omniglot size (`ns`: c 512, 1000-unit layers,
#        conv channels 64-128-256) with three convolutions per resolution, scale floor 0.0067
#        and sample dropout 0.1; 16 sets of 5 per step on ns28; lr 3e-4/1e-4/3e-5 (NS_LR; at
#        the paper's 1e-3 this model diverges, docs/findings.md section 15); seed 0.
#   gmn: the paper-size GMN with the mixture prior, trained on episodes of one character
#        (C_train 1: the most faithful samples at gmn-small's size, docs/findings.md section
#        13), 10 episodes of 20 per step on gmn28; lr 1e-3/3e-4/1e-4; seed 0.
# Both get the same wall-clock budget BUDGET_S: a probe trains both side by side for
# PROBE_S seconds (`--time-limit`) to measure their rates there, each schedule is sized to
# 88% of the budget at its rate, and `--time-limit` stops either, with a checkpoint, if it
# runs over. Then, side by side, each model exported in float16 and evaluated from that file:
#   ns:  classification on the 423 ns28 test classes (5/20-way, 1/5-shot, 1000 tasks; min-KL
#        in both directions, cosine), with the protocol's binarized test inputs and with grey
#        levels (`--binarization none`; docs/findings.md section 14);
#   gmn: the NLL table, C_test 1, on the seeded 100-episode gmn28 bank, K = 1000, and the
#        sample judge (docs/results/sample_fidelity.py, temperatures 1 and 0.5; on the CPU).
# $OUT receives results.tar.gz (commands, logs, metrics, summaries, evaluation folders),
# gmn.pt and ns.pt (ns.pt.part-00, -01, ... when it is over 15 MB: `cat ns.pt.part-* > ns.pt`).
# Work files stay in $WORK (default runs/gpu-paper-size): a rerun skips finished stages.
#
# Usage, on the device machine from the repository root (data copied to .devdata/):
#   OUT=/tmp/o PYTHON=python3 PPL_FEWSHOT_DATA=.devdata BUDGET_S=300 bash docs/results/gpu_paper_size.sh
# Dry run on a CPU (small models, a few seconds of training; ~2 min):
#   OUT=/tmp/o TINY=1 DEVICE=cpu PPL_FEWSHOT_DATA=../shared/data bash docs/results/gpu_paper_size.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu_paper_size_out}
WORK=${WORK:-runs/gpu-paper-size}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-300}
PROBE_S=${PROBE_S:-25}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PPL_FEWSHOT_CACHE=${PPL_FEWSHOT_CACHE:-$WORK/cache}
mkdir -p "$OUT" "$WORK"
LOG="$WORK/commands.txt"  # also where stage() writes each command

NS_LR=${NS_LR:-3e-4,1e-4,3e-5}
NS_ARGS="ns --protocol ns28 --lr $NS_LR --batch-size 16 --set-size 5 --set encoder_depth=3
  --set min_scale=0.0067 --set sample_dropout=0.1"
GMN_ARGS="gmn --protocol gmn28 --batch-size 10 --set-size 20 --classes 1 --set prior=mixture
  --lr 1e-3,3e-4,1e-4"
NS_EVAL="--ways 5,20 --k-shots 1,5 --tasks 1000"
GMN_EVAL="--episodes 100 --samples 1000"
if [ "${TINY:-0}" = "1" ]; then
  NS_ARGS="ns-small --protocol ns28 --lr $NS_LR --batch-size 2 --set-size 5 --set encoder_depth=3
    --set min_scale=0.0067 --set sample_dropout=0.1 --train-classes 20 --val-classes 4"
  GMN_ARGS="gmn-small --protocol gmn28 --batch-size 2 --set-size 6 --classes 1
    --set prior=mixture --train-classes 20 --val-classes 4 --lr 1e-3,3e-4,1e-4"
  NS_EVAL="--ways 5 --k-shots 1 --tasks 10"
  GMN_EVAL="--episodes 2 --samples 5 --shots 0,1,3 --set-size 4"
fi

STAGE_DIR=$WORK
# shellcheck source=benchmarks/stage.sh
. benchmarks/stage.sh
# shellcheck source=docs/results/gpu_common.sh
. docs/results/gpu_common.sh
train() {  # train NAME STEPS TIME_LIMIT ARGS...
  local name=$1 steps=$2 limit=$3; shift 3
  [ -f "$WORK/$name/summary.json" ] && return
  # shellcheck disable=SC2068
  stage "train_$name" "$((limit + 120))" "$PY" -m ppl_fewshot.cli train $@ --device "$DEVICE" \
    --seed 0 --steps "$steps" --time-limit "$limit" \
    --val-every "$(( steps >= 5 ? steps / 5 : steps ))" \
    --checkpoint-every "$(( steps >= 10 ? steps / 10 : steps ))" --quiet --out "$WORK/$name"
}
steps_for() {  # steps_for PROBE_DIR: the schedule that fills 88% of BUDGET_S at the probe's rate
  "$PY" - "$WORK/$1/metrics.jsonl" "$BUDGET_S" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
# the rate over the probe's second half: past the warm-up (CUDA context, autotuning) and
# the other probe's start-up, so both run side by side as the real runs will
# (too few log lines for that: from the first one; only one: the whole probe)
b = rows[-1]
a = next((r for r in rows if r["wall_s"] >= b["wall_s"] / 2 and r["step"] < b["step"]), rows[0])
rate = (b["wall_s"] - a["wall_s"]) / (b["step"] - a["step"]) if a is not b else b["wall_s"] / b["step"]
print(max(int(0.88 * float(sys.argv[2]) / rate) // 100 * 100, 100))
EOF
}

echo "== start $(date -u +%FT%TZ) device=$DEVICE budget=${BUDGET_S}s" | tee -a "$LOG"
# 0. versions; the Omniglot zips decoded once into the cache (not inside the probe's clock)
gpu_setup "$LOG" || exit 1
# 1. probe: both side by side for PROBE_S seconds
if [ ! -f "$WORK/probe_ns/summary.json" ] || [ ! -f "$WORK/probe_gmn/summary.json" ]; then
  rm -rf "$WORK/probe_ns" "$WORK/probe_gmn"
  # shellcheck disable=SC2086
  train probe_ns 100000 "$PROBE_S" $NS_ARGS &
  # shellcheck disable=SC2086
  train probe_gmn 100000 "$PROBE_S" $GMN_ARGS &
  wait
fi
NS_STEPS=$(steps_for probe_ns) && GMN_STEPS=$(steps_for probe_gmn) || { echo "probe failed";
  tail -n 20 "$WORK"/train_probe_*.log; exit 1; }
echo "== steps: ns $NS_STEPS, gmn $GMN_STEPS" | tee -a "$LOG"
# 2. the runs, side by side
# shellcheck disable=SC2086
train ns "$NS_STEPS" "$BUDGET_S" $NS_ARGS &
# shellcheck disable=SC2086
train gmn "$GMN_STEPS" "$BUDGET_S" $GMN_ARGS &
wait
echo "== trained $(date -u +%FT%TZ)" | tee -a "$LOG"
# 3. export and evaluate, side by side
export_fp16 ns
export_fp16 gmn
ns_classify ns ns_classify "ns paper size, encoder depth 3, $(steps_of ns) steps on $DEVICE" &
[ -f "$WORK/gmn_nll/nll.json" ] || stage eval_gmn 300 "$PY" -m ppl_fewshot.cli evaluate \
  --checkpoint "$WORK/gmn.pt" --task nll --protocol gmn28 --classes 1 $GMN_EVAL \
  --khat-episodes 0 --device "$DEVICE" --out "$WORK/gmn_nll" \
  --label "gmn, mixture prior, C_train 1, $(steps_of gmn) steps on $DEVICE" &
[ -f "$WORK/gmn_fidelity/fidelity.json" ] || stage fidelity_gmn 300 "$PY" \
  docs/results/sample_fidelity.py "$WORK/gmn_fidelity" "$WORK/gmn.pt" --temperatures 1,0.5 &
wait
echo "== done $(date -u +%FT%TZ)" | tee -a "$LOG"
# 4. what comes back
cat "$WORK/stages.tsv"
tar czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude=cache -C "$WORK" .
cp "$WORK/gmn.pt" "$OUT/gmn.pt" 2>/dev/null
if [ -f "$WORK/ns.pt" ] && [ "$(stat -c %s "$WORK/ns.pt")" -gt 15000000 ]; then
  split -b 15000000 -d "$WORK/ns.pt" "$OUT/ns.pt.part-"
else
  cp "$WORK/ns.pt" "$OUT/ns.pt" 2>/dev/null
fi
ls -la "$OUT"
