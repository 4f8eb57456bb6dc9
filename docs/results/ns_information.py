"""How much the Neural Statistician's context holds, by set size (docs/findings.md section 32).

``python docs/results/ns_information.py [CHECKPOINT ...]`` (default: the two zoo Neural
Statisticians) reads the first n drawings of each episode of the shared 100-episode gmn28 bank
(C_test 1, with-replacement: the bank of ``ppl-fewshot evaluate --task nll --episodes 100``)
for n = 1, 2, 3, 5, 10, 20 and prints, per model and n, the terms of the ELBO of the set:

* ``KL(c)``: KL(q(c | X_n) || p(c)) per set: the nats the guide puts into c;
* ``KL(z)``: KL(q(z | x, c) || p(z | c)) per item, c ~ q(c | X_n);
* ``recon``: -log p(x | z, c) per item, z ~ q(z | x, c);
* ``-ELBO``: recon + KL(z) + KL(c) / n, nats per item,

by :func:`ppl_fewshot.diagnostics.elbo_terms` (Monte Carlo over ``--draws`` 10 draws of the
guide).

Means over the 100 episodes with their standard errors. Why it matters: for an exchangeable
model p(X) = int p(c) prod p(x_i | c) dc and any set, sum_t -log p(x_t | x_<t) = -log p(X) =
E_{p(c|X)}[-log p(X | c)] + KL(p(c | X) || p(c)) exactly, so the whole fall of an NLL table's
column from 0 shots down to the "known character" level E[-log p(x_i | c)] is the KL of the
exact posterior over c; q's KL is the guide's view of it. One CPU thread, seed 0, about a minute
per model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_nll import mean_se  # noqa: E402

from ppl_fewshot.diagnostics import elbo_terms  # noqa: E402
from ppl_fewshot.inference.checkpoint import model_from_checkpoint  # noqa: E402
from ppl_fewshot.inference.eval_data import test_bank  # noqa: E402

SIZES = (1, 2, 3, 5, 10, 20)
DEFAULT = ("models/ns-medium-gmn28-omniglot.pt", "models/ns-medium-omniglot.pt")


def cell(v: torch.Tensor) -> str:
    """``mean (se)`` over episodes."""
    return "{:.1f} ({:.1f})".format(*mean_se(v.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="*", default=list(DEFAULT))
    parser.add_argument("--draws", type=int, default=10, help="draws of the guide per term")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bank, _ = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    for path in args.checkpoints:
        model, _ = model_from_checkpoint(path)
        model.float()
        print(f"\n{path} (c {model.c_dim}, z {model.z_dim})")
        print("| n | KL(c) per set | KL(z) per item | recon per item | -ELBO per item |")
        print("|---|---|---|---|---|")
        for n in SIZES:
            t = elbo_terms(model, bank.x[:, :n].float(), num_particles=args.draws)
            z = sum(v for k, v in t.items() if k not in ("c", "x")) / n
            cols = (t["c"], z, t["x"] / n, sum(t.values()) / n)
            print(f"| {n} | " + " | ".join(cell(v) for v in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
