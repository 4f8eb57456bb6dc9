#!/usr/bin/env bash
# One-shot GPU check of ppl_fewshot on a fresh machine, in under 10 minutes.
#
# Run from the repository root:
#
#     OUT=/path/to/results bash benchmarks/gpu_check.sh
#
# Stages (each under its own `timeout`, together at most 590 s without the wheel install
# and without GPU_CHECK_COMPILE, which allows 400 s per step_overhead stage; a
# failing or timed-out stage (rc 124) is recorded and the next one runs):
#   0. install: `pip install --no-deps --no-build-isolation -e .` (no network needed). If
#      torch or pyro cannot be imported and a `.whl/` folder exists, they are first installed
#      from it with `pip install --no-index --find-links .whl pyro-ppl torch`.
#   1. env.json: python, torch, pyro, CUDA device name, which imports work.
#   2. step_overhead_{gmn,ns}.json: benchmarks/step_overhead.py, batch 20 x 10 items.
#   3. run/: `ppl-fewshot train gmn --steps 300` on protocol gmn28 when
#      $PPL_FEWSHOT_DATA/gmn/train_small.npz exists, else on the synthetic `glyphs` protocol.
#   4. eval/: a quick `ppl-fewshot evaluate` (NLL table, few episodes, K = 200).
#   5. summary.json: per stage its return code and seconds.
#
# Environment:
#   OUT                 results folder (default ./gpu_check_out)
#   PPL_FEWSHOT_DATA    a copy of the raw data (optional; see above)
#   GPU_CHECK_DEVICE    cuda (default) or cpu
#   GPU_CHECK_TINY=1    tiny sizes for a CPU dry run (small models, a few steps; ~1-2 min)
#   GPU_CHECK_COMPILE=1 also time torch.compile'd networks in stage 2 (adds compile minutes)
#   PYTHON              the interpreter (default python)
set -uo pipefail

OUT=${OUT:-$PWD/gpu_check_out}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TINY=${GPU_CHECK_TINY:-0}
PY=${PYTHON:-python}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.tsv"
: > "$SUMMARY"

stage() {  # stage NAME TIMEOUT_S CMD...: run, log to $OUT/NAME.log, record rc and seconds
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name: $*" | tee -a "$OUT/commands.txt"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$SUMMARY"
    tail -n 3 "$OUT/$name.log"
    return 0
}

if [ "$TINY" = "1" ]; then
    BENCH_MODELS="gmn-small ns-small"; BENCH_ARGS="--batch 2 --set-size 3 --steps 3 --warmup 1 --ladder-rounds 2 --profile-steps 1"
    TRAIN_MODEL=gmn-small; TRAIN_ARGS="--steps 3 --batch-size 2 --set-size 3 --train-classes 10 --val-classes 2 --val-every 1000 --checkpoint-every 1000"
    EVAL_ARGS="--episodes 2 --samples 5 --set-size 4 --shots 0,1,3"
else
    BENCH_MODELS="gmn ns"; BENCH_ARGS="--batch 20 --set-size 10 --steps 50 --warmup 5 --ladder-rounds 30 --profile-steps 10"
    TRAIN_MODEL=gmn; TRAIN_ARGS="--steps 300 --checkpoint-every 300"
    EVAL_ARGS="--episodes 50 --samples 200 --set-size 20 --shots 0,1,2,5,10,19"
fi
STEP_LIMIT=100
if [ "${GPU_CHECK_COMPILE:-0}" = "1" ]; then BENCH_ARGS="$BENCH_ARGS --compile"; STEP_LIMIT=400; fi

# 0. install (no network)
if ! "$PY" -c "import torch, pyro" > /dev/null 2>&1 && [ -d .whl ]; then
    stage install_wheels 300 "$PY" -m pip install --no-index --find-links .whl pyro-ppl torch
fi
# importable from outside the tree, and this tree's copy (else the scripts in benchmarks/ fail)
ROOT=$PWD
if ! (cd / && "$PY" -c "import ppl_fewshot, sys; sys.exit(not ppl_fewshot.__file__.startswith('$ROOT'))") > /dev/null 2>&1; then
    stage install 90 "$PY" -m pip install --no-deps --no-build-isolation -e .
fi

# 1. environment
stage env 60 "$PY" - "$OUT/env.json" <<'EOF'
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
EOF

# 2. per-step overhead of Trace_ELBO against the hand-written loss
for m in $BENCH_MODELS; do
    # shellcheck disable=SC2086
    stage "step_overhead_$m" "$STEP_LIMIT" "$PY" benchmarks/step_overhead.py --model "$m" --device "$DEVICE" \
        --threads 1 $BENCH_ARGS --out "$OUT/step_overhead_$m.json"
done

# 3. short training run
PROTOCOL=glyphs
if [ -n "${PPL_FEWSHOT_DATA:-}" ] && [ -f "$PPL_FEWSHOT_DATA/gmn/train_small.npz" ]; then
    PROTOCOL=gmn28
fi
echo "protocol: $PROTOCOL" | tee -a "$OUT/commands.txt"
# shellcheck disable=SC2086
stage train 160 "$PY" -m ppl_fewshot.cli train "$TRAIN_MODEL" --protocol "$PROTOCOL" \
    --device "$DEVICE" --quiet --out "$OUT/run" $TRAIN_ARGS

# 4. quick evaluation of that run
# shellcheck disable=SC2086
stage evaluate 80 "$PY" -m ppl_fewshot.cli evaluate --checkpoint "$OUT/run/checkpoint.pt" \
    --task nll --protocol "$PROTOCOL" --device "$DEVICE" --out "$OUT/eval" $EVAL_ARGS

# 5. summary
"$PY" - "$SUMMARY" "$OUT/summary.json" "$PROTOCOL" "$DEVICE" "$TINY" <<'EOF'
import json, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
stages = {name: {"rc": int(rc), "seconds": int(s)} for name, rc, s in rows}
summary = {"protocol": sys.argv[3], "device": sys.argv[4], "tiny": sys.argv[5] == "1",
           "stages": stages, "all_ok": all(v["rc"] == 0 for v in stages.values())}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(json.dumps(summary))
EOF
