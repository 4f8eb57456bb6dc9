"""Min-KL classification scores averaged over independent binarizations of the same tasks.

Is the accuracy lost to one binarized draw of each test drawing variance or bias? This sums
the scores (forward / reverse min-KL, cosine) of M independent Bernoulli draws of the same
seeded N-way 1-shot ns28 tasks and prints the accuracy after each draw (docs/findings.md
section 14). The grey levels behind the draws are those of `evaluate --binarization none`.

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/ns_binarization_draws.py \
           models/ns-medium-omniglot.pt --ways 20 --tasks 1000 --draws 8
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from ppl_fewshot.data import load_split
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.classify import cosine_scores, make_tasks, min_kl_scores, predict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--ways", type=int, default=20)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--seed", type=int, default=123, help="seed of the Bernoulli draws")
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(args.checkpoint, device="cpu")
    grey = make_tasks(dataclasses.replace(load_split("ns28", "test"), binarization="none"),
                      args.tasks, args.ways, 1, seed=0)
    g = torch.Generator().manual_seed(args.seed)
    scorers = {"forward": lambda t: min_kl_scores(model, t),
               "reverse": lambda t: min_kl_scores(model, t, reverse=True),
               "cosine": lambda t: cosine_scores(model, t)}
    total: dict[str, torch.Tensor] = {}
    for m in range(1, args.draws + 1):
        drawn = dataclasses.replace(
            grey, support=(torch.rand(grey.support.shape, generator=g) < grey.support).float(),
            query=(torch.rand(grey.query.shape, generator=g) < grey.query).float())
        for name, score in scorers.items():
            total[name] = total.get(name, 0) + score(drawn)
        acc = {k: round(100 * (predict(v) == grey.labels).float().mean().item(), 1)
               for k, v in total.items()}
        print(f"{m} draw(s): {acc}", flush=True)


if __name__ == "__main__":
    main()
