"""Does a zoo model's card reproduce it? Compare a rerun of the card's ``train_command`` with
the file.

``python docs/results/zoo_repro.py OUT.json ZOO.pt RUN_FOLDER``: ZOO.pt's card (ZOO.json) gives
the command that trained it; RUN_FOLDER is a rerun of that command (same seed and settings;
the validation and checkpoint frequencies do not change the training). Writes the weights'
difference (:func:`ppl_fewshot.inference.weight_difference`), the card's and the rerun's final
training and validation losses, and what a bit-for-bit rerun needs to match: the card's
versions and the rerun's (from its ``summary.json``: since section 45 they include the library's
commit, the processor, torch's CPU instruction set and the thread count). For example, for
``models/gmn-small-omniglot.pt`` (~30 min of one core)::

    PPL_FEWSHOT_DATA=../shared/data ppl-fewshot --threads 1 train gmn-small --protocol gmn28 \\
      --steps 10000 --batch-size 10 --set-size 20 --classes 2 --lr 1e-3,3e-4,1e-4 \\
      --val-every 1000 --checkpoint-every 500 --seed 0 --out runs/repro/zoo-s0
    python docs/results/zoo_repro.py docs/results/zoo-repro/gmn-small-code-cbfa485.json \\
      models/gmn-small-omniglot.pt runs/repro/zoo-s0

That rerun with the code of cbfa485 gives another run (docs/findings.md section 45); with the
code of 415b193 (``git worktree add /tmp/old 415b193``, then the same command from there with
``PYTHONPATH=/tmp/old``) it gives the file bit for bit (``gmn-small-code-415b193.json``). The
image-read card's command gives ``models/gmn-small-imgread-omniglot.pt`` bit for bit with the
code of 6df0442, the mixture card's does not (section 46:
``gmn-small-{imgread,mixture}-code-6df0442.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ppl_fewshot.inference import weight_difference

LOSSES = ("final_train_loss_nats_per_item", "final_val_loss_nats_per_item")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("zoo")
    p.add_argument("run")
    args = p.parse_args()
    zoo, run = Path(args.zoo), Path(args.run)
    card = json.loads(zoo.with_suffix(".json").read_text())
    summary = json.loads((run / "summary.json").read_text())  # the run's versions too
    result = {
        "zoo": str(zoo),
        "run": str(run),
        "train_command": card["train_command"],
        "weights": weight_difference(zoo, run / "checkpoint.pt"),
        "losses": {k: {"card": card.get(k), "rerun": summary.get(k)} for k in LOSSES},
        "versions": {"card": card.get("versions"), "rerun": summary.get("versions")},
        "rerun_wall_time_s": summary.get("wall_time_s"),
        "card_wall_time_s": card.get("budget", {}).get("wall_time_s"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("weights", "losses")}, indent=1))


if __name__ == "__main__":
    main()
