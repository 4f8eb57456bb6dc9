#!/usr/bin/env bash
# How far the plain importance-sampled NLLs are from converged: the gmn28 NLL table (C_test = 1)
# of a checkpoint, on the seeded 100-episode bank, by annealed importance sampling (K = 8
# particles, 100 HMC-bridged distributions, 2 leapfrog steps) and by plain importance sampling
# (K = 1000) on the same episodes. One thread each (~12 min + ~2 min on a quiet core for gmn-small).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ais.sh [CHECKPOINT [NAME [LABEL]]]
set -euo pipefail
cd "$(dirname "$0")/../.."
CK=${1:-models/gmn-small-omniglot.pt}
NAME=${2:-gmn-small}
LABEL=${3:-gmn-small 10k steps}
R=docs/results
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
ev --checkpoint "$CK" --task nll --protocol gmn28 --classes 1 --episodes 100 --samples 8 \
   --ais-steps 100 --khat-episodes 0 --label "$LABEL, AIS" --out $R/$NAME-gmn28-C1-AIS100-K8-100ep
ev --checkpoint "$CK" --task nll --protocol gmn28 --classes 1 --episodes 100 --samples 1000 \
   --khat-episodes 0 --label "$LABEL" --out $R/$NAME-gmn28-C1-K1000-100ep
