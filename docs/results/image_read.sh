#!/usr/bin/env bash
# GMN with the image read (`--set image_read=true`: the decoder also sees the attention-weighted
# average of the memory's images, so it can copy an attended drawing; ppl_fewshot/models/gmn.py),
# docs/findings.md sections 8 and 9.
#
# 1. Trains gmn-small[image_read=true] exactly as models/gmn-small-omniglot.pt was trained (10k
#    steps, C_train = 2, seed 0) and exports it to models/gmn-small-imgread-omniglot.pt.
# 2. Scores it like run_all.sh scores the vector-read model: TARGETS.md table 1 (C_test = 1 on
#    the 659 gmn28 episodes, K = 1000, and the distinct sampler, K = 200; C_test = 2..4 on 200),
#    the 2000-step ablations with the image read, table 2 (classification), table 3 (MNIST).
# 3. The seeded 100-episode bank (paired comparisons): both gmn-small models, and the paper-size
#    `gmn` with the image read trained for 6000 steps (~70 min on one thread), on the
#    with-replacement (K = 1000) and distinct (K = 200) samplers; annealed IS of the
#    image-read model on the bank (ais.sh).
# 4. The same paper-size recipe trained on a GPU (section 9): GPU=cuda bash ... trains it there
#    (~5 min on an H200) and scores it on the bank and on the 659 episodes.
# One thread; each step is skipped when its output exists. ~45 min of training for 1, ~70 for 3,
# and ~4 h of evaluation in all on a quiet core.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/image_read.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
RUN=runs/imgread/gmn-small-imgread-c2
CK=models/gmn-small-imgread-omniglot.pt
N=gmn-small-imgread
RECIPE="--protocol gmn28 --batch-size 10 --set-size 20 --classes 2 --lr 1e-3,3e-4,1e-4 --seed 0
        --quiet --set image_read=true"
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
bank() {  # bank CHECKPOINT LABEL NAME: the seeded 100-episode bank, both samplers
  ev --checkpoint "$1" --task nll --protocol gmn28 --classes 1 --episodes 100 --khat-episodes 0 \
     --sampler with-replacement --samples 1000 --label "$2" --out $R/$3-gmn28-C1-K1000-100ep
  ev --checkpoint "$1" --task nll --protocol gmn28 --classes 1 --episodes 100 --khat-episodes 0 \
     --sampler distinct --samples 200 --label "$2" --out $R/$3-gmn28-distinct-K200-100ep
}

# 1. train and export
# shellcheck disable=SC2086
train_run gmn-small --steps 10000 --val-every 1000 --checkpoint-every 500 $RECIPE --out $RUN
[ -f $CK ] || ppl-fewshot export --checkpoint $RUN/checkpoint.pt --out $CK

# 2. the tables
ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler with-replacement \
   --samples 1000 --out $R/$N-gmn28-C1-K1000
ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler distinct \
   --samples 200 --out $R/$N-gmn28-distinct
SET=image_read=true TAG=-imgread bash $R/ablations.sh
ev --checkpoint $CK --task classify --protocol gmn28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
   --classify-samples 10 --methods likelihood,cosine --out $R/$N-gmn28-classify
ev --checkpoint $CK --task transfer --samples 1000 --episodes 200 --k-shots 1,5 --tasks 1000 \
   --classify-samples 10 --methods likelihood,cosine --out $R/$N-mnist28
for c in 2 3 4; do
  ev --checkpoint $CK --task nll --protocol gmn28 --classes $c --sampler with-replacement \
     --samples 1000 --episodes 200 --out $R/$N-gmn28-C$c-K1000-200ep
done

# 3. the 100-episode bank; the paper-size model on CPU
bank $CK "gmn-small image-read 10k steps" $N
bank models/gmn-small-omniglot.pt "gmn-small 10k steps" gmn-small
bash $R/ais.sh $CK $N "gmn-small image-read 10k steps"   # annealed IS on the bank (~25 min)
BIG=runs/imgread/gmn-imgread-c2-s6000
# shellcheck disable=SC2086
train_run gmn --steps 6000 --val-every 1000 --checkpoint-every 500 $RECIPE --out $BIG
bank $BIG/checkpoint.pt "gmn image-read 6k steps" gmn-imgread-s6000

# 4. the same recipe on a GPU (section 9 used a 6600-step schedule stopped by a time limit at
#    step 6460 and evaluated its step-6050 checkpoint; this runs the schedule to its end)
if [ "${GPU:-}" != "" ]; then
  G=runs/imgread/gmn-imgread-gpu-s6600
  # shellcheck disable=SC2086
  [ -f $G/summary.json ] || ppl-fewshot train gmn --steps 6600 --val-every 1100 \
    --checkpoint-every 550 --device "$GPU" --out $G $RECIPE
  ev --checkpoint $G/checkpoint.pt --task nll --protocol gmn28 --classes 1 --episodes 100 \
     --khat-episodes 0 --sampler with-replacement --samples 1000 --device "$GPU" \
     --label "gmn image-read, GPU, 6600 steps" --out $R/gmn-imgread-gpu-s6600-gmn28-C1-K1000-100ep
  ev --checkpoint $G/checkpoint.pt --task nll --protocol gmn28 --classes 1 \
     --sampler with-replacement --samples 1000 --label "gmn image-read, GPU, 6600 steps" \
     --out $R/gmn-imgread-gpu-s6600-gmn28-C1-K1000
fi

# Sample grids and attention maps of the committed model, and the sampler's diagnosis (findings 10).
[ -f $R/figures-gmn-small-imgread/figures.json ] || ppl-fewshot --threads 1 figures \
  --checkpoint models/gmn-small-imgread-omniglot.pt --out $R/figures-gmn-small-imgread
[ -f $R/gmn-sampling/sampling.json ] || python docs/results/gmn_sampling.py $R/gmn-sampling \
  models/gmn-small-imgread-omniglot.pt models/gmn-small-omniglot.pt
