#!/usr/bin/env bash
# Neural Statistician: train ns-small widened (channels 32, hidden 256, c 128, z 16, sample dropout
# 0.1) on ns28 sets of 5 (batches of 16 sets), then every evaluation of issue #4, one thread each.
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns.sh
# (20000 steps: ~45 min of one quiet core, 74 min with other jobs; evaluations ~30 min.)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-20000}
R=docs/results
run=runs/ns-medium
# ev ARGS... --out DIR, train_run ARGS... --out RUN (common.sh): evaluate / train unless the
# output is already there (delete it to redo); an unfinished training resumes
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
train_run ns-small --protocol ns28 --steps "$STEPS" --batch-size 16 \
  --set-size 5 --set channels=32 --set hidden=256 --set c_dim=128 --set sample_dropout=0.1 \
  --lr 1e-3,3e-4,1e-4 --val-every 2000 --checkpoint-every 500 --seed 0 --quiet --out "$run"
CK=$run/checkpoint.pt
# Omniglot few-shot classification on the 423 ns28 test classes: closed-form min-KL (both
# directions) and cosine on 1000 tasks each; likelihood (importance-sampled log p(X_c u {x})
# - log p(X_c), K=5) on 200 one-shot tasks
ev --checkpoint $CK --task classify --protocol ns28 --ways 5,20 --k-shots 1,5 --tasks 1000 \
   --methods min-kl,min-kl-reverse,cosine --out $R/ns-medium-ns28-classify
# the same tasks with grey-level test inputs instead of one Bernoulli draw (findings section 14),
# from the shipped float16 file
ev --checkpoint models/ns-medium-omniglot.pt --task classify --protocol ns28 --ways 5,20 \
   --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine --binarization none \
   --label "ns-medium, grey test inputs" --out $R/ns-medium-ns28-classify-grey
ev --checkpoint $CK --task classify --protocol ns28 --ways 5,20 --k-shots 1 --tasks 200 \
   --methods likelihood --classify-samples 5 --out $R/ns-medium-ns28-classify-likelihood
# Omniglot -> MNIST: 10-way 1/5-shot and the NLL table on mnist28
ev --checkpoint $CK --task transfer --ways 10 --k-shots 1,5 --tasks 1000 \
   --methods min-kl,min-kl-reverse,cosine --samples ${K:-100} --episodes 100 \
   --out $R/ns-medium-mnist28
# ... and on the official MNIST test digits (mnist28-t10k: grey levels, seeded Bernoulli draws),
# binarized as the protocol says and as grey levels (findings section 14)
for b in dynamic none; do
  if [ $b = none ]; then sfx=-grey lab=", grey test inputs"; else sfx="" lab=""; fi
  ev --checkpoint models/ns-medium-omniglot.pt --task classify --protocol mnist28-t10k --ways 10 \
     --k-shots 1,5 --tasks 1000 --methods min-kl,min-kl-reverse,cosine --binarization $b \
     --label "ns-medium$lab" --out $R/ns-medium-mnist28-t10k$sfx
done
# the conditional NLL table on gmn28 (C_test = 1, TARGETS.md table 1 layout); a set-latent
# model needs log p(X) of 10 prefixes per episode (81 items), ~10x GMN's work per sample, so
# K=100 on a seeded bank of 100 episodes (the bank every model gets with --episodes 100)
ev --checkpoint $CK --task nll --protocol gmn28 --classes 1 --sampler with-replacement \
   --samples ${K:-100} --episodes 100 --out $R/ns-medium-gmn28-with-replacement
[ -f $R/figures-ns-medium/figures.json ] || ppl-fewshot --threads 1 figures --checkpoint $CK \
  --protocols ns28,mnist28 --out $R/figures-ns-medium
