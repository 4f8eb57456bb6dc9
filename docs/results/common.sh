# shellcheck shell=bash
# Shared by the CPU result scripts in docs/results; sourced from the repository root (after the
# script's `cd`). Every step is skipped when its output exists, so a rerun does only what is
# missing (delete an output to redo it). Safe under `set -euo pipefail`.
# have_result DIR: true when DIR holds a result (a *.json file).
# ev ARGS... --out DIR: `ppl-fewshot --threads 1 evaluate ARGS...` unless DIR holds a result
#   (then prints "kept DIR").
# train_run ARGS... --out RUN: `ppl-fewshot --threads 1 train ARGS...` (standard input
#   /dev/null), with --resume appended when RUN has a checkpoint.pt; skipped (printing
#   "kept RUN") when RUN/summary.json exists, i.e. the training has finished.
# bank_nll CHECKPOINT K LABEL OUT [ARGS...]: `ev` of the NLL table on the shared 100-episode
#   bank (C_test 1, K importance samples, no k-hat), ARGS (e.g. --sampler distinct) added.
# urn_theta ATOMS: the urn's theta fitted for ATOMS atoms (0: a Dirichlet process) in
#   docs/results/ns-urn-fit/fit.json (docs/results/ns_urn.sh fit).
# urn_export CHECKPOINT OUT ATOMS: `ppl-fewshot export` of CHECKPOINT with a Pólya urn of ATOMS
#   atoms and urn_theta's theta, unless OUT exists.
have_result() { compgen -G "$1/*.json" > /dev/null; }
ev() {
  local out="${*: -1}"
  if have_result "$out"; then echo "kept $out"; else ppl-fewshot --threads 1 evaluate "$@"; fi
}
bank_nll() {
  ev --checkpoint "$1" --task nll --classes 1 --episodes 100 --samples "$2" --khat-episodes 0 \
    --label "$3" "${@:5}" --out "$4"
}
urn_theta() {
  python -c "import json, sys; print(json.load(open(sys.argv[1]))['fits']['atoms=$1']['theta'])" \
    docs/results/ns-urn-fit/fit.json
}
urn_export() {
  [ -f "$2" ] && return 0
  ppl-fewshot export --checkpoint "$1" --out "$2" --set urn_concentration="$(urn_theta "$3")" \
    --set urn_atoms="$3"
}
train_run() {
  local run="${*: -1}"
  if [ -f "$run/summary.json" ]; then echo "kept $run"; return 0; fi
  if [ -f "$run/checkpoint.pt" ]; then set -- "$@" --resume; fi
  ppl-fewshot --threads 1 train "$@" < /dev/null
}
