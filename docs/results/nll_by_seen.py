"""NLL tables of the shared gmn28 bank split by whether each episode's character is a training
class of another protocol (``ns28`` by default), and paired differences within each part.

``python docs/results/nll_by_seen.py BASE_DIR [NEW_DIR ...]`` reads each folder's
``nll_episodes.csv`` (``ppl-fewshot evaluate --task nll`` on the 100-episode C_test 1 bank)
and prints, for the episodes whose character ``--protocol``'s training split holds ("seen")
and for the others ("unseen"), every folder's mean per shot column and each NEW - BASE paired
difference with its standard error (docs/findings.md section 31). One character per episode
(C_test 1) is assumed and checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_nll import load, mean_se  # noqa: E402

from ppl_fewshot.data import load_split  # noqa: E402
from ppl_fewshot.inference.eval_data import test_bank, training_class_overlap  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--protocol", default="ns28", help="whose training classes count as seen")
    p.add_argument("--episodes", type=int, default=100)
    args = p.parse_args()
    bank, _ = test_bank("gmn28", 1, 20, args.episodes, "with-replacement", 0, None)
    if not bool((bank.labels == bank.labels[:, :1]).all()):
        raise SystemExit("the bank's episodes hold more than one character (C_test > 1)")
    test = load_split("gmn28", "test")
    seen_names = set(training_class_overlap(args.protocol, "gmn28", test, None)["names"])
    seen = [test.class_names[int(c)] in seen_names for c in bank.labels[:, 0]]
    tables = [load(f) for f in args.folders]
    cols = [k for k in tables[0] if all(k in t for t in tables)]
    for part, flag in (("seen", True), ("unseen", False)):
        idx = [i for i, s in enumerate(seen) if s == flag]
        print(f"\n{part} by {args.protocol}: {len(idx)} episodes")
        print("| | " + " | ".join(c.removeprefix("shots_") for c in cols) + " |")
        for f, t in zip(args.folders, tables):
            cells = [f"{mean_se([t[c][i] for i in idx])[0]:.1f}" for c in cols]
            print(f"| {Path(f).name} | " + " | ".join(cells) + " |")
        for f, t in zip(args.folders[1:], tables[1:]):
            cells = []
            for c in cols:
                m, se = mean_se([t[c][i] - tables[0][c][i] for i in idx])
                cells.append(f"{m:+.1f} ({se:.1f})")
            print(f"| {Path(f).name} - {Path(args.folders[0]).name} | " + " | ".join(cells)
                  + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
