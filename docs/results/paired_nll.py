"""Paired difference of two NLL evaluations of the same seeded episode bank, per shot column.

``python docs/results/paired_nll.py BASE_DIR NEW_DIR`` reads each folder's
``nll_episodes.csv`` (written by ``ppl-fewshot evaluate --task nll``) and prints, per column,
the mean of NEW - BASE over episodes and its standard error: far tighter than the two
tables' own standard errors, which are dominated by how hard the episodes are. Only the shot
columns both evaluations scored are compared (e.g. a ``--shots 0`` run against a full table).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path


def load(folder: str) -> dict[str, list[float]]:
    with open(Path(folder) / "nll_episodes.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k != "episode"}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def main() -> None:
    base, new = load(sys.argv[1]), load(sys.argv[2])
    shared = [k for k in base if k in new]
    if not shared or any(len(base[k]) != len(new[k]) for k in shared):
        raise SystemExit("the two evaluations share no shot column or cover different episodes")
    cells = []
    for k in shared:
        d = [b - a for a, b in zip(base[k], new[k])]
        n = len(d)
        mean, se = mean_se(d)
        cells.append(f"{k.removeprefix('shots_')}: {mean:+.1f} ({se:.1f})")
    print(f"{sys.argv[2]} - {sys.argv[1]}, nats, mean (se) over {n} episodes:")
    print("; ".join(cells))


if __name__ == "__main__":
    main()
