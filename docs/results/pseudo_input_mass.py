"""How much of a GMN's attention lands on its pseudo-input when the memory holds the query's
character.

``python docs/results/pseudo_input_mass.py OUT.json CHECKPOINT... [--shots 1,5]``: on the shared
100-episode gmn28 bank (C_test 1, with-replacement, seed 0: every item is of the episode's one
character), the first S items are the memory and item S the query. For each checkpoint and S,
the mean weight of the last attention step on the pseudo-input (all its columns), for the
recognition read (guide, query x), the likelihood read (decoder, z at the guide mean) and the
prior's read (``pseudo_input_mass_by_read`` of :func:`ppl_fewshot.cli_figures.attention_summary`,
which ``ppl-fewshot figures`` reports at C_test 2). Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ppl_fewshot.cli_figures import attention_summary
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--shots", default="1,5")
    args = p.parse_args()
    torch.set_num_threads(1)
    bank, path = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    shots = [int(s) for s in args.shots.split(",")]
    result = {"bank": path.name, "shots": shots, "models": {}}
    for ck in args.checkpoints:
        model, _ = model_from_checkpoint(ck)
        model.eval()
        rows = {str(s): attention_summary(model, bank, s)["pseudo_input_mass_by_read"]
                for s in shots}
        result["models"][ck] = rows
        print(ck, json.dumps(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
