"""Add ``training_class_overlap`` to result JSONs written before ``evaluate`` recorded it.

``ppl-fewshot evaluate`` now records, for a checkpoint trained under another protocol, how
many of the test classes it trained on (``ppl_fewshot.inference.eval_data.
training_class_overlap``), and ``ppl-fewshot report`` flags those rows. This applies the same
function to older results, from the protocols they name; nothing else in them changes.

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/mark_overlap.py docs/results/*/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ppl_fewshot.data import load_split
from ppl_fewshot.inference.eval_data import training_class_overlap
from ppl_fewshot.utils import atomic_write_text


def main(paths: list[str]) -> int:
    for path in map(Path, paths):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(r, dict) or "task" not in r or "training_class_overlap" in r:
            continue
        if r.get("split", "test") != "test":
            continue
        trained_on = (r.get("train_config") or {}).get("protocol")
        o = training_class_overlap(trained_on, r["protocol"], load_split(r["protocol"], "test"),
                                   None)
        if o is None:
            continue
        r["training_class_overlap"] = {k: v for k, v in o.items() if k != "names"}
        atomic_write_text(path, json.dumps(r, indent=2))
        print(f"{path}: {o['classes']} of {o['of']} test classes trained on "
              f"({o['train_protocol']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
