#!/usr/bin/env bash
# GMN with the image read (`--set image_read=true`: the decoder also sees the attention-weighted
# average of the memory's images, so it can copy an attended drawing; ppl_fewshot/models/gmn.py).
# Trains gmn-small[image_read=true] exactly as models/gmn-small-omniglot.pt was trained (10k steps,
# C_train = 2, seed 0), exports it to models/gmn-small-imgread-omniglot.pt, and scores it like
# run_all.sh scores the vector-read model: TARGETS.md table 1 (C_test = 1 on the 659 gmn28
# episodes, K = 1000; C_test = 2..4 on 200), table 2 (classification) and table 3 (MNIST), the
# 2000-step ablations with the image read, and the AIS check on the 100-episode bank.
# One thread; each step is skipped when its output exists. ~45 min training + ~1.5 h evaluation
# on a quiet core.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/image_read.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
RUN=runs/imgread/gmn-small-imgread-c2
CK=models/gmn-small-imgread-omniglot.pt
N=gmn-small-imgread
ev() { local out="${*: -1}"; if compgen -G "$out/*.json" > /dev/null; then echo "kept $out"
       else ppl-fewshot --threads 1 evaluate "$@"; fi; }
if [ ! -f $RUN/summary.json ]; then
  ppl-fewshot --threads 1 train gmn-small --protocol gmn28 --steps 10000 --batch-size 10 \
    --set-size 20 --classes 2 --lr 1e-3,3e-4,1e-4 --val-every 1000 --checkpoint-every 500 \
    --seed 0 --quiet --out $RUN --set image_read=true $( [ -d $RUN ] && echo --resume )
fi
[ -f $CK ] || ppl-fewshot export --checkpoint $RUN/checkpoint.pt --out $CK
ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler with-replacement \
   --samples 1000 --out $R/$N-gmn28-C1-K1000
SET=image_read=true TAG=-imgread bash $R/ablations.sh
ev --checkpoint $CK --task classify --protocol gmn28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
   --classify-samples 10 --methods likelihood,cosine --out $R/$N-gmn28-classify
ev --checkpoint $CK --task transfer --samples 1000 --episodes 200 --k-shots 1,5 --tasks 1000 \
   --classify-samples 10 --methods likelihood,cosine --out $R/$N-mnist28
for c in 2 3 4; do
  ev --checkpoint $CK --task nll --protocol gmn28 --classes $c --sampler with-replacement \
     --samples 1000 --episodes 200 --out $R/$N-gmn28-C$c-K1000-200ep
done
bash $R/ais.sh $CK $N "gmn-small image-read 10k steps"
[ -f $R/figures-$N/figures.json ] || ppl-fewshot --threads 1 figures --checkpoint $CK --out $R/figures-$N
