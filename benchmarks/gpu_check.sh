#!/usr/bin/env bash
# One-shot GPU check of ppl_fewshot on a fresh machine.
#
# Run from the repository root:
#
#     OUT=/path/to/results PPL_FEWSHOT_DATA=/path/to/data bash benchmarks/gpu_check.sh
#
# Stages (each under its own `timeout`; a failing or timed-out stage (rc 124) is recorded and
# the next one runs; the limits sum to about 540 s + GPU_CHECK_TRAIN_S; the stages themselves
# take about 150 s + GPU_CHECK_TRAIN_S + the evaluation):
#   0. install: torch and pyro from a `.whl/` folder if they cannot be imported (`pip install
#      --no-index --find-links .whl pyro-ppl torch`), then this tree on PYTHONPATH (no network,
#      no build step).
#   1. env.json: python, torch, pyro, CUDA device name, which imports work.
#   2. step_overhead_{gmn,ns}.json: benchmarks/step_overhead.py, batch 20 x 10 items.
#   3. train_probe/: 50 steps of the training recipe below, to measure seconds per step
#      (between its first and last log line, so without the warm-up).
#   4. run/: `ppl-fewshot train gmn --set image_read=true` with the CPU recipe of
#      docs/results/image_read.sh (C_train = 2, 10 episodes of 20 per step, lr phases
#      1e-3,3e-4,1e-4, seed 0) for as many steps as fit in GPU_CHECK_TRAIN_S seconds at the
#      probe's rate; on gmn28 when $PPL_FEWSHOT_DATA/gmn/train_small.npz exists, else on the
#      synthetic `glyphs` protocol. run/summary.json has its wall time and peak GPU memory.
#   5. model.pt: that run exported in float16 (a few MB: it can come back from a device machine).
#   6. eval/: `ppl-fewshot evaluate` (NLL, C_test = 1) on the seeded 100-episode bank, K = 1000:
#      the same episodes as the CPU evaluations in docs/results/*-100ep.
#   7. summary.json: per stage its return code and seconds; training steps, seconds per step,
#      peak memory, validation loss; the NLL row.
#
# Environment:
#   OUT                 results folder (default ./gpu_check_out)
#   PPL_FEWSHOT_DATA    a copy of the raw data (optional; see above)
#   GPU_CHECK_DEVICE    cuda (default) or cpu
#   GPU_CHECK_TRAIN_S   training budget of stage 4 in seconds (default 240)
#   GPU_CHECK_TINY=1    tiny sizes for a CPU dry run (small models, a few steps; ~1-2 min)
#   GPU_CHECK_COMPILE=1 also time torch.compile'd networks in stage 2 (adds compile minutes)
#   PYTHON              the interpreter (default python)
set -uo pipefail

OUT=${OUT:-$PWD/gpu_check_out}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TINY=${GPU_CHECK_TINY:-0}
TRAIN_S=${GPU_CHECK_TRAIN_S:-240}
PY=${PYTHON:-python}
mkdir -p "$OUT"
STAGE_DIR=$OUT
SUMMARY="$OUT/stages.tsv"
: > "$SUMMARY"
# shellcheck source=benchmarks/stage.sh
. "$(dirname "$0")/stage.sh"

if [ "$TINY" = "1" ]; then
    BENCH_MODELS="gmn-small ns-small"
    BENCH_ARGS="--batch 2 --set-size 3 --steps 3 --warmup 1 --ladder-rounds 2 --profile-steps 1"
    TRAIN_MODEL=gmn-small; PROBE_STEPS=3; MAX_STEPS=6
    TRAIN_ARGS="--batch-size 2 --set-size 3 --train-classes 10 --val-classes 2"
    EVAL_ARGS="--episodes 2 --samples 5 --set-size 4 --shots 0,1,3 --khat-episodes 2"
else
    BENCH_MODELS="gmn ns"
    BENCH_ARGS="--batch 20 --set-size 10 --steps 40 --warmup 5 --ladder-rounds 20 --profile-steps 5"
    TRAIN_MODEL=gmn; PROBE_STEPS=50; MAX_STEPS=90000
    TRAIN_ARGS="--batch-size 10 --set-size 20"
    EVAL_ARGS="--episodes 100 --samples 1000 --khat-episodes 0"  # no ArviZ on the device
fi
TRAIN_ARGS="$TRAIN_ARGS --classes 2 --lr 1e-3,3e-4,1e-4 --set image_read=true --seed 0"
STEP_LIMIT=100
if [ "${GPU_CHECK_COMPILE:-0}" = "1" ]; then BENCH_ARGS="$BENCH_ARGS --compile"; STEP_LIMIT=400; fi

# 0. install (no network): wheels if needed, then this tree on the path
if ! "$PY" -c "import torch, pyro" > /dev/null 2>&1 && [ -d .whl ]; then
    stage install_wheels 300 "$PY" -m pip install --no-index --find-links .whl pyro-ppl torch
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# 1. environment
stage env 60 "$PY" - "$OUT/env.json" <<'PYEOF'
import importlib, json, platform, sys
info = {"python": platform.python_version(), "platform": platform.platform()}
for mod in ("torch", "pyro", "numpy", "matplotlib", "tqdm", "PIL", "arviz", "ppl_fewshot"):
    try:
        info[mod] = getattr(importlib.import_module(mod), "__version__", "ok")
    except Exception as exc:  # record, do not stop
        info[mod] = f"import failed: {exc}"
try:
    import torch
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
except Exception:
    pass
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info))
PYEOF

# 2. per-step overhead of Trace_ELBO against the hand-written loss
for m in $BENCH_MODELS; do
    # shellcheck disable=SC2086
    stage "step_overhead_$m" "$STEP_LIMIT" "$PY" benchmarks/step_overhead.py --model "$m" \
        --device "$DEVICE" --threads 1 $BENCH_ARGS --out "$OUT/step_overhead_$m.json"
done

# 3-4. training: a probe for the rate, then the run sized to the budget
PROTOCOL=glyphs
if [ -n "${PPL_FEWSHOT_DATA:-}" ] && [ -f "$PPL_FEWSHOT_DATA/gmn/train_small.npz" ]; then
    PROTOCOL=gmn28
fi
echo "protocol: $PROTOCOL" | tee -a "$OUT/commands.txt"
train() {  # train NAME TIMEOUT_S STEPS
    local n=$3
    # shellcheck disable=SC2086
    stage "$1" "$2" "$PY" -m ppl_fewshot.cli train "$TRAIN_MODEL" --protocol "$PROTOCOL" \
        --device "$DEVICE" --quiet --out "$OUT/$1" --steps "$n" \
        --val-every "$(( n >= 6 ? n / 6 : n ))" --checkpoint-every "$(( n >= 4 ? n / 4 : n ))" \
        $TRAIN_ARGS
}
train train_probe 120 "$PROBE_STEPS"
STEPS=$("$PY" - "$OUT/train_probe/metrics.jsonl" "$PROBE_STEPS" "$TRAIN_S" "$MAX_STEPS" <<'PYEOF'
import json, sys
probe, budget, cap = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
try:  # seconds per step between the first and the last log line: the first steps' warm-up
    # (CUDA context, cuDNN autotuning) is left out; validations and saves are counted
    rows = [json.loads(line) for line in open(sys.argv[1])]
    a, b = rows[0], rows[-1]
    rate = (b["wall_s"] - a["wall_s"]) / (b["step"] - a["step"]) if b["step"] > a["step"] else 0
    steps = int(0.85 * budget / (rate if rate > 0 else b["wall_s"] / b["step"]))
except Exception:
    steps = probe
print(max(min(steps, cap) // 60 * 60, probe))
PYEOF
)
echo "training steps: $STEPS (budget $TRAIN_S s)" | tee -a "$OUT/commands.txt"
train run "$((TRAIN_S + 60))" "$STEPS"
stage export 60 "$PY" -m ppl_fewshot.cli export --checkpoint "$OUT/run/checkpoint.pt" \
    --dtype float16 --out "$OUT/model.pt"

# 6. evaluation of that run on the seeded bank
# shellcheck disable=SC2086
stage evaluate 150 "$PY" -m ppl_fewshot.cli evaluate --checkpoint "$OUT/model.pt" \
    --task nll --protocol "$PROTOCOL" --classes 1 --device "$DEVICE" --out "$OUT/eval" \
    --label "gmn image-read, $STEPS steps on $DEVICE" $EVAL_ARGS

# 7. summary
"$PY" - "$SUMMARY" "$OUT/summary.json" "$PROTOCOL" "$DEVICE" "$TINY" "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
stages = {name: {"rc": int(rc), "seconds": int(s)} for name, rc, s in rows}
summary = {"protocol": sys.argv[3], "device": sys.argv[4], "tiny": sys.argv[5] == "1",
           "stages": stages, "all_ok": all(v["rc"] == 0 for v in stages.values())}
out = Path(sys.argv[6])
for name in ("train_probe", "run"):
    f = out / name / "summary.json"
    if f.exists():
        t = json.loads(f.read_text())
        keys = ("steps", "wall_time_s", "peak_device_memory_bytes",
                "final_val_loss_nats_per_item", "best_val_loss_nats_per_item", "best_step")
        summary[name] = {k: t.get(k) for k in keys}
        summary[name]["seconds_per_step"] = t["wall_time_s"] / t["steps"]
f = out / "eval" / "nll.json"
if f.exists():
    e = json.loads(f.read_text())
    keys = ("shots", "nll", "se", "episodes", "num_particles", "eval_wall_time_s")
    summary["eval"] = {k: e.get(k) for k in keys}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(json.dumps(summary))
PYEOF
