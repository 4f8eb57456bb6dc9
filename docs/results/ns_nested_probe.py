"""log p(X) of whole 20-item sets by plain and nested importance sampling (findings 25).

``python docs/results/ns_nested_probe.py [CHECKPOINT] [--episodes 2]`` scores the first
episodes of the shared 100-episode gmn28 bank (C_test 1, with-replacement, the bank of
``ppl-fewshot evaluate --task nll --episodes 100``) with ``model.log_marginal`` at K
draws of the set latent x M draws of each item's latents, and prints nats per item for each
episode. Section 2's AIS estimate for the same two episodes (K 8, 100 steps) is -137.04 per
item on average; one CPU thread, ~7 minutes for the default settings.
"""

from __future__ import annotations

import argparse
import time

import torch

from ppl_fewshot.inference.checkpoint import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank

SETTINGS = ((1000, 1), (100, 10), (1000, 10), (100, 100))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", default="models/ns-medium-omniglot.pt")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    model, _ = model_from_checkpoint(args.checkpoint)
    bank, _ = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    x, mask = bank.x[: args.episodes], bank.mask[: args.episodes]
    n = mask.sum(-1)
    for k, m in SETTINGS:
        t0 = time.perf_counter()
        per_item = model.log_marginal(x, mask, k, inner=m) / n
        print(f"K={k:5d} x M={m:3d}: per item {[round(v, 2) for v in per_item.tolist()]}, "
              f"mean {per_item.mean():.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
