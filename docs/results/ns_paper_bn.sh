#!/usr/bin/env bash
# The paper-size Neural Statistician with batch normalization at the paper's Adam 1e-3, on one
# CPU thread (issue #4). `ns` (c 512, 1000-unit layers, conv channels 64-128-256) with three
# convolutions per resolution, scale floor 0.0067 and sample dropout 0.1, as
# docs/results/gpu_paper_size.sh trains it on a GPU, plus `--set norm=batch`; 16 sets of 5 per
# step on ns28; constant lr 1e-3 (without batch norm this model diverges at 1e-3,
# docs/findings.md section 15); seed 0. It trains until TIME_S seconds have passed
# (`--time-limit`; default 6000, ~0.8 steps/s beside another job) with a checkpoint every 1000
# steps copied to $run/snaps; a rerun resumes (a finished run stays as it is). Then classification of the last checkpoint on the
# 423 ns28 test classes (20-way 1-shot and 5-way 1-shot, 1000 tasks; min-KL both directions,
# cosine). The comparison at equal steps is ns-medium-depth3 (ns_encoder.sh), whose rate is
# 1e-3 until step 6667 (docs/findings.md section 17).
# Usage: PPL_FEWSHOT_DATA=../shared/data TIME_S=6000 bash docs/results/ns_paper_bn.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=docs/results/ns_common.sh
. docs/results/ns_common.sh
run=${RUN:-runs/ns-bn/paper}
mkdir -p "$run/snaps"
resume=""; [ -f "$run/checkpoint.pt" ] && resume=--resume
ppl-fewshot --threads 1 train ns --protocol ns28 --steps 20000 --batch-size 16 --set-size 5 \
  --set encoder_depth=3 --set min_scale=0.0067 --set sample_dropout=0.1 --set norm=batch \
  --lr 1e-3 --val-every 1000 --checkpoint-every 1000 --time-limit "${TIME_S:-6000}" --quiet \
  --seed 0 --out "$run" $resume < /dev/null &
keep_snaps "$run" $!
classify --checkpoint "$run/checkpoint.pt" --k-shots 1 \
   --label "ns (paper size), batch norm, lr 1e-3" --out docs/results/ns-paper-bn-ns28-classify
