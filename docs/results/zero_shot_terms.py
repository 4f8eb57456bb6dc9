"""Where a GMN's nats go at each number of shots: the rate (KL of q(z | x, X) from p(z | X))
and the distortion (E_q[-log p(x | z, X)]) of the ELBO term of an item with S drawings of its
character in memory.

``python docs/results/zero_shot_terms.py OUT.json CHECKPOINT... [--draws 10]``: on the shared
100-episode gmn28 bank (C_test 1, with-replacement, seed 0), the terms of every episode's item
at position S (S = 0, 1, 2, 3, 4, 5, 10, 19 shots, the NLL table's columns), and the 0-shot
terms of all the bank's 2000 items scored as sets of one (column ``"all0"``), split by sample
site with :func:`ppl_fewshot.diagnostics.elbo_terms` (``per_item``; ``--draws`` draws of the
guide per term). Means and standard errors over episodes (items for ``all0``), nats; each
later checkpoint also minus the first, paired on the same items. Prints and writes JSON, and
with ``--md OUT.md`` its tables (a model is named by its run folder, or the file's stem for
a checkpoint outside ``runs/``). About 30 s per model on one thread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from ppl_fewshot.diagnostics import elbo_terms
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.compare import mean_se as _mean_se
from ppl_fewshot.inference.eval_data import test_bank

SHOTS = (0, 1, 2, 3, 4, 5, 10, 19)


def mean_se(v: Tensor) -> dict[str, float]:
    """Mean and standard error of a 1-d tensor (:func:`ppl_fewshot.inference.compare.mean_se`),
    rounded to 0.01 nats."""
    mean, se = _mean_se(v.double().tolist())
    return {"mean": round(mean, 2), "se": round(se, 2)}


def split(terms: dict[str, Tensor]) -> dict[str, Tensor]:
    """A GMN's two sites as rate (``z``), distortion (``x``) and their sum, -ELBO."""
    if set(terms) != {"z", "x"}:
        raise ValueError(f"expected a GMN's sites z and x, got {sorted(terms)}")
    return {"rate": terms["z"], "distortion": terms["x"], "neg_elbo": terms["z"] + terms["x"]}


def columns(model, x: Tensor, draws: int) -> dict[str, dict[str, Tensor]]:
    """``{column: {term: per-unit values}}``: the shot columns and ``all0``."""
    episodes = split(elbo_terms(model, x, num_particles=draws, per_item=True))
    items = x.reshape(-1, 1, *x.shape[2:])  # every item, a set of one
    alone = split(elbo_terms(model, items, num_particles=draws, per_item=True))
    out = {str(s): {k: v[:, s] for k, v in episodes.items()} for s in SHOTS}
    out["all0"] = {k: v[:, 0] for k, v in alone.items()}
    return out


def name(checkpoint: str) -> str:
    """A run's folder (``runs/.../NAME/checkpoint.pt``), else the file's stem."""
    path = Path(checkpoint)
    return path.parent.name if path.name == "checkpoint.pt" else path.stem


def markdown(result: dict) -> str:
    """Tables of the rate, distortion and -ELBO by column, then the paired differences."""
    cols = [str(s) for s in SHOTS] + ["all0"]
    head = "| {}, by shots | " + " | ".join(c if c != "all0" else "0, all items"
                                            for c in cols) + " |\n|---" + "|---" * len(cols) + "|\n"
    out = [f"Bank `{result['bank']}`, {result['draws']} draws of the guide per term; nats, "
           "mean (se).\n"]
    models = result["models"]
    for key, what in (("rate", "rate, KL(q(z | x, X) || p(z | X))"),
                      ("distortion", "distortion, E_q[-log p(x | z, X)]"),
                      ("neg_elbo", "-ELBO")):
        for paired in (False, True):
            rows = [(ck, r["minus_first"] if paired else r) for ck, r in models.items()
                    if not paired or "minus_first" in r]
            if not rows:
                continue
            title = f"{what} minus the first model's, paired" if paired else what
            out.append("\n" + head.format(title) + "".join(
                f"| {name(ck)} | " + " | ".join(
                    f"{r[c][key]['mean']:{'+' if paired else ''}.2f} ({r[c][key]['se']:.2f})"
                    for c in cols) + " |\n" for ck, r in rows))
    return "".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--md", help="also write the tables here")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bank, path = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    result = {"bank": path.name, "draws": args.draws, "models": {}}
    base: dict[str, dict[str, Tensor]] = {}
    for ck in args.checkpoints:
        model, _ = model_from_checkpoint(ck)
        terms = columns(model, bank.x, args.draws)
        row = {c: {k: mean_se(v) for k, v in t.items()} for c, t in terms.items()}
        if base:  # paired with the first checkpoint on the same items
            row["minus_first"] = {c: {k: mean_se(v - base[c][k]) for k, v in t.items()}
                                  for c, t in terms.items()}
        else:
            base = terms
        result["models"][ck] = row
        print(ck, json.dumps({c: row[c]["rate"]["mean"] for c in terms}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    if args.md:
        Path(args.md).write_text(markdown(result))


if __name__ == "__main__":
    main()
