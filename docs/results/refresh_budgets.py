"""Bring the training budget of older results of continued runs up to date.

Results of a run started with ``--init-from`` that were written before checkpoints recorded
``earlier_runs`` give only the last run's steps and wall time. For every result JSON under
the given folders whose ``train_config`` has an ``init_from``, this reloads its checkpoint
(only if the file still has the sha256 the result recorded), recomputes the budget with
:func:`ppl_fewshot.inference.checkpoint.training_budget` (the ``init_from`` chain followed
through the files that exist) and rewrites ``training_budget`` in the JSON and the budget
phrase of the markdown beside it. Nothing else changes.

Usage: python docs/results/refresh_budgets.py docs/results/*
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ppl_fewshot.cli_commands import sha256_file
from ppl_fewshot.inference.checkpoint import load_checkpoint, training_budget
from ppl_fewshot.inference.report import budget_text
from ppl_fewshot.utils import atomic_write_text


def refresh(path: Path) -> str:
    result = json.loads(path.read_text())
    if not isinstance(result, dict) or not (result.get("train_config") or {}).get("init_from"):
        return "not a continued run"
    ckpt = Path(result.get("checkpoint") or "")
    if not ckpt.is_file() or sha256_file(ckpt) != result.get("checkpoint_sha256"):
        return f"kept: {ckpt} is gone or not the checkpoint it scored"
    budget = training_budget(load_checkpoint(ckpt))
    if budget.get("steps_in_all") is None:
        return "kept: an earlier run's checkpoint is gone"
    result["training_budget"] = budget
    atomic_write_text(path, json.dumps(result, indent=2))
    md = path.with_suffix(".md")
    if md.is_file():  # "...; budget: <text>; checkpoint sha256 ..." as evaluate writes it
        text = re.sub(r"; budget: .*?; checkpoint sha256", f"; budget: {budget_text(budget)}; "
                      "checkpoint sha256", md.read_text(), count=1)
        atomic_write_text(md, text)
    return f"{budget['steps_in_all']} steps in all"


def main() -> None:
    for folder in sys.argv[1:]:
        for path in sorted(Path(folder).glob("*.json")):
            print(f"{path}: {refresh(path)}")


if __name__ == "__main__":
    main()
