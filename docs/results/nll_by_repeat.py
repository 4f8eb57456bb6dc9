"""An NLL table split by whether each query repeats a drawing of its context (section 34).

``python docs/results/nll_by_repeat.py DIR [DIR ...]`` reads each folder's ``nll_episodes.csv``
(``ppl-fewshot evaluate --task nll --classes 1 --episodes 100``, the shared with-replacement
gmn28 bank) and the bank itself, marks for every episode and shot column t whether item t is an
exact copy of one of items 0..t-1, and prints per folder and column the mean NLL (standard
error) over the episodes whose query is a repeat and over those whose query is a new drawing,
with the share of repeats. The authors' sampler draws with replacement, so at t shots the query
repeats a context drawing with probability about 1 - (19/20)^t: a table on this bank mixes how
cheaply a model copies with how well it draws a new drawing of a known character.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_nll import load, mean_se  # noqa: E402

from ppl_fewshot.inference.eval_data import test_bank  # noqa: E402
from ppl_fewshot.models.urn import repeat_counts  # noqa: E402


def cell(values: list[float]) -> str:
    if len(values) < 2:
        return "-" if not values else f"{values[0]:.1f}"
    return "{:.1f} ({:.1f})".format(*mean_se(values))


def main() -> None:
    folders = sys.argv[1:]
    if not folders:
        sys.exit(__doc__)
    bank, _ = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    x = bank.x.float()
    repeat = (repeat_counts(x, torch.ones(x.shape[:2], dtype=torch.bool))[2] > 0).tolist()
    for folder in folders:
        table = load(folder)
        cols = {c: int(c.removeprefix("shots_")) for c in table if c.startswith("shots_")}
        print(f"\n{folder}")
        print("| query | " + " | ".join(str(t) for t in cols.values()) + " |")
        print("|---|" + "---|" * len(cols))
        for name, want in (("repeat", True), ("new", False)):
            cells = [cell([v for e, v in enumerate(table[c]) if repeat[e][t] == want])
                     for c, t in cols.items()]
            print(f"| {name} | " + " | ".join(cells) + " |")
        share = [f"{sum(r[t] for r in repeat) / len(repeat):.2f}" for t in cols.values()]
        print("| share of repeats | " + " | ".join(share) + " |")


if __name__ == "__main__":
    main()
