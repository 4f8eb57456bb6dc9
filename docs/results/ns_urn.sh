#!/usr/bin/env bash
# The Neural Statistician with a Pólya urn over its items (docs/findings.md section 34): the
# exported gmn28 NS (models/ns-medium-gmn28-omniglot.pt, unchanged weights) as the base measure
# p(x | c) of a random discrete measure, so that an exact repeat of an earlier drawing costs
# -log w_copy nats (ppl_fewshot.models.urn; the settings urn_concentration, urn_atoms).
# `fit`: the urn's theta by maximum likelihood on the partitions of 5000 training episodes
#   (gmn28 training classes, 20 items with replacement; docs/results/ns_urn_fit.py, seconds);
# `export`: two checkpoints in runs/ns-urn (mkdir) with the fitted theta (common.sh's urn_export):
#   a Dirichlet process (atoms 0) and 20 atoms;
# `nll`: their NLL tables on the shared 100-episode bank (with replacement, C_test 1, K 100;
#   a query that repeats a context drawing scores log w_copy exactly, a new one log w_new plus
#   the NS's importance-sampled conditional given the distinct context drawings; ~13 min each
#   on one thread), paired with the plain model's K 100 row (section 31) by
#   docs/results/paired_nll.py and split into repeated and new queries by
#   docs/results/nll_by_repeat.py. On episodes without repeats (the distinct bank) the urn
#   only adds -log w_new to each cell (+0.07 to +0.85 nats for the DP, to +3.0 for 20 atoms
#   at 19 shots): nothing to run.
# `k1000`: the Dirichlet-process urn's table at the protocol's K 1000 (~2 h on one thread),
#   paired with the plain model's K 1000 row (section 32; the same weights).
# Usage: PPL_FEWSHOT_DATA=../shared/data bash docs/results/ns_urn.sh [fit|export|nll|k1000|all] [dp|n20|both]
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results run=runs/ns-urn
# shellcheck source=docs/results/common.sh
. docs/results/common.sh
BASE=models/ns-medium-gmn28-omniglot.pt
fit() {  # the fit is kept in docs/results, so `export` needs no refit on a fresh clone
  mkdir -p $R/ns-urn-fit
  [ -f $R/ns-urn-fit/fit.json ] ||
    python docs/results/ns_urn_fit.py --episodes 5000 --out $R/ns-urn-fit/fit.json; }
export_one() {  # export_one NAME ATOMS
  mkdir -p $run
  urn_export $BASE $run/$1.pt "$2"; }
nll_one() {  # nll_one NAME LABEL
  bank_nll $run/$1.pt 100 "$2" $R/ns-medium-gmn28trained-sets5-urn-$1-C1-K100-100ep; }
M=${2:-both}
names() { case "$M" in dp) echo dp ;; n20) echo n20 ;; both) echo dp n20 ;;
  *) echo "unknown model $M (dp, n20 or both)" >&2; return 2 ;; esac; }
names > /dev/null
export_all() { for n in $(names); do export_one "$n" "$([ "$n" = dp ] && echo 0 || echo 20)"; done; }
nll() {
  for n in $(names); do
    if [ "$n" = dp ]; then L="Dirichlet-process urn"; else L="20-atom urn"; fi
    nll_one "$n" "ns-medium trained on gmn28 sets of 5 + $L (theta fitted; repeats exact)"
  done; }
k1000() {
  bank_nll $run/dp.pt 1000 "ns-medium trained on gmn28 sets of 5 + Dirichlet-process urn (theta fitted; repeats exact)" \
    $R/ns-medium-gmn28trained-sets5-urn-dp-C1-K1000-100ep; }
case "${1:-all}" in
  fit) fit ;;
  export) export_all ;;
  nll) nll ;;
  k1000) k1000 ;;
  all) fit; export_all; nll; k1000 ;;
  *) echo "usage: $0 [fit|export|nll|k1000|all] [dp|n20|both]" >&2; exit 2 ;;
esac
