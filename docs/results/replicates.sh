#!/usr/bin/env bash
# The two-by-two designs of findings sections 43-47 (attention or not, crossed with training
# episodes of one character or two) with two training seeds per cell, contrasted per recipe so
# that the spread between seeds joins the error bar (`ppl-fewshot compare --runs 2`,
# ppl_fewshot.inference.replicates). Seconds; reads result folders only.
# Usage: bash docs/results/replicates.sh [vector] [imgread]   (default: both)
# Writes docs/results/replicates/DESIGN-{classify,C1-K1000-100ep}-CONTRAST.json and DESIGN.md
# with every table. The cells, each "seed 0 folder, seed 1 folder":
#   a. GMN C_train 1, b. no attention C_train 1, c. GMN C_train 2 (seed 0: the zoo file),
#   d. no attention C_train 2 (scored at C_test 1).
# Contrasts: interaction (a - b) - (c - d); attention at C_train 1 (a - b) and at C_train 2
# (c - d); the paper's comparison (b - c).
set -euo pipefail
cd "$(dirname "$0")/../.."
R=docs/results
OUT=$R/replicates
mkdir -p "$OUT"
designs=("$@")
[ ${#designs[@]} -gt 0 ] || designs=(vector imgread)
contrasts=("interaction 1,-1,-1,1" "attention-ctrain1 1,-1,0,0" "attention-ctrain2 0,0,1,-1"
           "paper-comparison 0,1,-1,0")
folders() {  # DESIGN KIND: the eight folders, a0 a1 b0 b1 c0 c1 d0 d1
  local tag= w= zoo t=classify s=-s10000
  [ "$2" = classify ] || t=C1-K1000-100ep
  if [ "$1" = vector ]; then
    zoo=gmn-small-gmn28-classify-tasks
    [ "$2" = classify ] || zoo=gmn-small-gmn28-C1-K1000-100ep
  else  # the image read: table 2 at 5-way (its seed-1 runs were scored at 5-way only)
    tag=-imgread zoo=gmn-small-imgread-gmn28-classify-tasks-5way
    [ "$2" = classify ] && w=-5way || zoo=gmn-small-imgread-gmn28-C1-K1000-100ep
  fi
  local a=$R/ablation-gmn-ctrain1$tag$s b=$R/ablation-no-attention-ctrain1$tag$s
  local c=$R/ablation-gmn-ctrain2$tag$s d=$R/ablation-no-attention-ctrain2$tag$s
  # seed 0's b and d hold 5- and 20-way cells (no -5way); its c is the zoo file's folder
  echo "$a-$t$w $a-seed1-$t$w $b-$t $b-seed1-$t$w $R/$zoo $c-seed1-$t$w $d-$t $d-seed1-$t$w"
}
for design in "${designs[@]}"; do
  md=$OUT/$design.md
  echo "# The $design-read two-by-two, two training seeds per cell (bash docs/results/replicates.sh $design)" > "$md"
  for kind in classify C1-K1000-100ep; do
    # shellcheck disable=SC2046
    set -- $(folders "$design" "$kind")
    for c in "${contrasts[@]}"; do
      name=${c% *}
      weights=${c#* }
      {
        echo
        echo "## $kind: $name ($weights)"
        echo
        ppl-fewshot compare --weights="$weights" --runs 2 "$@" --out "$OUT/$design-$kind-$name.json"
      } >> "$md"
    done
  done
  echo "$md"
done
