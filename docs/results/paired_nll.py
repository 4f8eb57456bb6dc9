"""Paired difference of two NLL evaluations of the same seeded episode bank, per shot column.

``python docs/results/paired_nll.py BASE_DIR NEW_DIR`` prints, per column, the mean of
NEW - BASE over episodes and its standard error, in one line (the form the result scripts
log): far tighter than the two tables' own standard errors, which are dominated by how hard
the episodes are. The library does the work (:func:`ppl_fewshot.inference.compare.paired_nll`,
which refuses two different banks); ``ppl-fewshot compare BASE_DIR NEW_DIR`` prints the same
as a table with both means.
"""

from __future__ import annotations

import sys

from ppl_fewshot.inference.compare import paired_nll


def main() -> None:
    p = paired_nll(sys.argv[1], sys.argv[2])
    print(f"{sys.argv[2]} - {sys.argv[1]}, nats, mean (se) over {p.episodes} episodes:")
    print("; ".join(f"{c.shots}: {c.diff:+.1f} ({c.se:.1f})" for c in p.columns))


if __name__ == "__main__":
    main()
