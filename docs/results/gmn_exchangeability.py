"""How far from exchangeable are the trained GMNs? log p(X) over orders of the same set.

A Generative Matching Network factorizes ``log p(X) = sum_t log p(x_t | x_<t)`` in one
order; nothing in its training makes the total the same in every order. For the first
``--episodes`` episodes of the shared gmn28 bank (C_test = 1, with-replacement sampler,
seed 0, the bank of the NLL tables), each checkpoint estimates ``log p(X)`` of the 20-item
set in ``--orders`` random orders and, as the noise floor, ``--orders`` times in the bank's
order (:func:`ppl_fewshot.diagnostics.exchangeability_spread` with and without
``same_order``), K = ``--particles`` importance samples per conditional. Per set:

- ``order_std``: the std of log p(X) over orders (model and estimator together);
- ``noise_std``: the std of repeated estimates in one order (estimator alone);
- ``excess_std``: sqrt(mean order_std^2 - mean noise_std^2), the model's own spread.

``--model pixel-beta-bernoulli`` adds the exact exchangeable control (both stds 0).

Usage: PPL_FEWSHOT_DATA=../shared/data python docs/results/gmn_exchangeability.py OUT CKPT...
[--episodes 30 --orders 8 --particles 100]   (writes OUT/exchangeability.json; a few minutes
per checkpoint on one thread.)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ppl_fewshot import models
from ppl_fewshot.diagnostics import exchangeability_spread
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank
from ppl_fewshot.models import label as model_label


def measure(model, x: torch.Tensor, orders: int, particles: int) -> dict:
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.no_grad():
        order = exchangeability_spread(model, x, orders, particles,
                                       generator=torch.Generator().manual_seed(0))
        noise = exchangeability_spread(model, x, orders, particles, same_order=True)
        lp = model.conditional_log_likelihoods(x, None, particles).sum(-1)
    o2, n2 = float((order ** 2).mean()), float((noise ** 2).mean())
    return {"order_std_mean": float(order.mean()), "noise_std_mean": float(noise.mean()),
            "excess_std": math.sqrt(max(o2 - n2, 0.0)),
            "order_std_max": float(order.max()), "log_p_X_mean": float(lp.mean()),
            "order_std": [round(v, 3) for v in order.tolist()],
            "noise_std": [round(v, 3) for v in noise.tolist()],
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--model", action="append", default=[],
                        help="a registry model without weights (pixel-beta-bernoulli: fitted "
                             "by empirical Bayes on the gmn28 training split)")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--orders", type=int, default=8)
    parser.add_argument("--particles", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    bank, _ = test_bank("gmn28", 1, 20, 659, "with-replacement", 0, None)
    x = bank.x[: args.episodes].float()
    results = {
        "protocol": f"gmn28 test, the first {args.episodes} episodes of the 659-episode bank "
                    "(C_test = 1, 20 items, with-replacement sampler, seed 0)",
        "estimator": f"importance sampling, K = {args.particles} per conditional; "
                     f"{args.orders} random orders, {args.orders} repeats in the bank's order",
        "models": [],
    }
    entries = [(c, None) for c in args.checkpoints] + [(None, m) for m in args.model]
    for ckpt, name in entries:
        if ckpt is not None:
            model, state = model_from_checkpoint(ckpt)
            row = {"checkpoint": ckpt, "model": model_label(model), "step": state["step"]}
        else:
            model = models.build(name)
            if hasattr(model, "fit_empirical_bayes"):
                from ppl_fewshot.data import load_split

                train = load_split("gmn28", "train")
                model.fit_empirical_bayes(train.to_float(train.images))
            row = {"checkpoint": None, "model": name, "step": 0}
        model.eval()
        row.update(measure(model, x, args.orders, args.particles))
        results["models"].append(row)
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
    (args.out / "exchangeability.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
