"""Where a model's conditional NLL is lost: on the characters it trained on, on held-out
characters of its training alphabets, or on new alphabets (docs/findings.md section 22).

Reads `ppl-fewshot evaluate --task nll` result folders of one model on the `train`, `val` and
`test` splits (`--split`), rebuilds each folder's episode bank from its JSON (same split,
protocol, classes, episodes, sampler and seed, so the very same episodes), and scores every
bank exactly with a pixel-beta-bernoulli checkpoint (fitted on all training classes; with
1568 hyperparameters it memorizes nothing of a character). Episodes differ in how hard they
are; the pixel model's exact NLL of the same episode is a yardstick of that, so the
difference model - pixel is compared across splits with a paired standard error.

Usage::

    python docs/results/generalization_gap.py OUT.json PIXEL.pt RESULT_DIR [RESULT_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from paired_nll import load  # docs/results/paired_nll.py: the nll_episodes.csv reader

from ppl_fewshot.inference import model_from_checkpoint, nll_table
from ppl_fewshot.inference.eval_data import eval_split, test_bank


def per_episode(folder: Path) -> tuple[dict, torch.Tensor]:
    """The result JSON and its per-episode NLLs ``[E, len(shots)]`` (paired_nll.py's reader)."""
    cols = load(str(folder))
    return json.loads((folder / "nll.json").read_text()), torch.tensor(list(cols.values())).T


def bank_of(res: dict):
    """The episode bank a result was scored on, rebuilt from its JSON."""
    split = res.get("split", "test")
    ds = eval_split(split, res["protocol"], res.get("train_config") if split != "test" else None,
                    None)
    bank, _ = test_bank(res["protocol"], res["c_test"], res["set_size"], res["episodes"],
                        res["episode_sampler"], res["seed"], None, dataset=ds, split=split)
    return bank


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    return round(float(v.mean()), 2), round(float(v.std() / math.sqrt(len(v))), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("pixel", type=Path, help="a pixel-beta-bernoulli checkpoint")
    ap.add_argument("results", type=Path, nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pixel, _ = model_from_checkpoint(args.pixel)
    rows = []
    for folder in args.results:
        res, ours = per_episode(folder)
        ref = torch.tensor(nll_table(pixel, bank_of(res), tuple(res["shots"]))["per_episode"])
        gap = ours - ref
        row = {"result": str(folder), "label": res["label"], "split": res.get("split", "test"),
               "shots": res["shots"], "episodes": len(ours),
               "model": [mean_se(c) for c in ours.T], "pixel": [mean_se(c) for c in ref.T],
               "model_minus_pixel": [mean_se(c) for c in gap.T]}
        rows.append(row)
        print(f"{row['split']:5s} {row['label']}")
        for name in ("model", "pixel", "model_minus_pixel"):
            print(f"  {name:18s}" + " ".join(f"{m:7.1f} ({s:.1f})" for m, s in row[name]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pixel_checkpoint": str(args.pixel), "rows": rows},
                                   indent=2))


if __name__ == "__main__":
    main()
