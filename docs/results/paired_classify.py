"""Paired difference in accuracy of two ``classify_k.py`` runs on the same seeded tasks.

``python docs/results/paired_classify.py BASE.json NEW.json`` pairs the rows of equal K and
proposal scale (each row keeps its queries decided right per task) and prints, per row, both
accuracies and the mean of NEW - BASE over tasks with its standard error: two checkpoints
decide the same queries, so the difference is far tighter than either run's own interval.
"""

from __future__ import annotations

import json
import sys

from ppl_fewshot.inference.compare import mean_se


def rows(path: str) -> tuple[dict, dict[tuple[int, float], dict]]:
    d = json.load(open(path))
    return d, {(r["k"], r["proposal_scale"]): r for r in d["rows"] if "correct_per_task" in r}


def main() -> None:
    (a, ra), (b, rb) = rows(sys.argv[1]), rows(sys.argv[2])
    same = ("protocol", "ways", "shots", "tasks", "seed")
    if any(a[k] != b[k] for k in same):
        raise SystemExit(f"the two runs classify different tasks ({', '.join(same)} differ)")
    shared = [key for key in ra if key in rb]
    if not shared:
        raise SystemExit("no K and proposal scale in common with per-task counts")
    q = a["queries_per_task"]
    print(f"{sys.argv[2]} - {sys.argv[1]}: {a['ways']}-way {a['shots']}-shot, {a['tasks']} tasks")
    for key in shared:
        d = [100 * (y - x) / q for x, y in zip(ra[key]["correct_per_task"],
                                                  rb[key]["correct_per_task"])]
        mean, se = mean_se(d)
        print(f"K {key[0]} x{key[1]}: {ra[key]['accuracy']:.1f} -> {rb[key]['accuracy']:.1f}, "
              f"paired {mean:+.2f} ({se:.2f})")


if __name__ == "__main__":
    main()
