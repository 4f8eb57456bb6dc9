"""Where the Neural Statistician's importance sampler loses: the draws of c (findings 26).

``python docs/results/ns_c_proposal.py {widen,variance,snis,ais} [--episodes E]`` probes
``models/ns-medium-omniglot.pt`` on the first episodes of the shared 100-episode gmn28 bank
(C_test 1, with-replacement: the bank of ``ppl-fewshot evaluate --task nll --episodes 100``),
one CPU thread, seed 0:

* ``widen``: log p(X) of whole 20-item sets (2 episodes) by nested importance sampling, K 100
  draws of c x M 10 of each z, with q(c | X)'s scale multiplied by s (alpha 1), or a defensive
  mixture ``(1 - alpha) q + alpha q_s``; the weights use the density c was drawn from.
* ``variance``: for the same draws of c, two independent sets of M item draws: the variance
  of log w over the K draws of c, and the part of it that is inner (z) noise, for sets of 1,
  2, 5 and 20 items (4 episodes).
* ``snis``: the self-normalized ("paired") conditional: c_k ~ q(c | x_<=t), one set of
  weights for both prefixes, ``log sum_k w_k p(x_t | c_k) - log sum_k w_k`` with w_k the
  weight of x_<t (20 episodes, t = 0, 1, 2).
* ``ais``: annealed importance sampling (K 8, S steps of 2 leapfrog steps) of log p of the
  first n items (``--sizes``, default 1 and 2: the 0- and 1-shot conditionals) and of the
  conditionals between consecutive sizes (20 episodes), S = ``--steps`` (default 0, 30, 100,
  300, 1000); ``ais --sizes 2,3 --steps 300`` gives the 2-shot conditional.

Minutes each on a quiet core, except ``ais`` (about an hour, most of it S = 1000).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch.distributions import Independent

from ppl_fewshot.inference.checkpoint import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank
from ppl_fewshot.models.annealing import AIS, nested_terms, set_sites


def draw_c(model, x, mask, K, ctx, scale=1.0, alpha=1.0):
    """K draws of the set latent: a trace to replay and ``log q_prop(c)`` ``[K, B]``, from q(c|X)
    with its scale times ``scale`` (probability ``alpha``) or as it is (``1 - alpha``)."""
    B = x.shape[0]
    with pyro.plate("particles", K, dim=-3):
        shared = set_sites(poutine.trace(model.guide).get_trace(x, mask, ctx))
    logq = x.new_zeros(K, B)
    for site in shared.nodes.values():
        fn = site["fn"]
        while isinstance(fn, Independent):
            fn = fn.base_dist
        q = dist.Normal(fn.loc, fn.scale).to_event(1)
        wide = dist.Normal(fn.loc, scale * fn.scale).to_event(1)
        pick = (torch.rand(K, 1, 1) < alpha).expand(K, B, 1).unsqueeze(-1)
        site["value"] = torch.where(pick, wide.sample(), site["value"])
        lq = wide.log_prob(site["value"]) + math.log(alpha)
        if alpha < 1:
            lq = torch.logaddexp(lq, q.log_prob(site["value"]) + math.log1p(-alpha))
        logq = logq + lq.expand(K, B, 1)[..., 0]
    return shared, logq


def widen(model, bank, episodes: int) -> None:
    x, mask = bank.x[:episodes], bank.mask[:episodes]
    ctx = model.prepare(x, mask)
    for s, alpha in ((1, 1), (1.25, 1), (1.5, 1), (2, 1), (3, 1), (1.5, .5), (2, .5), (3, .5)):
        lw = []
        for _ in range(4):  # 4 chunks of 25 draws of c
            shared, logq = draw_c(model, x, mask, 25, ctx, s, alpha)
            prior, _, items = nested_terms(model, x, mask, shared, 25, 10, ctx)
            lw.append(prior - logq + items.sum(-1))
        lw = torch.cat(lw)
        est = (torch.logsumexp(lw, 0) - math.log(lw.shape[0])) / x.shape[1]
        ess = 1 / (torch.softmax(lw, 0) ** 2).sum(0)
        print(f"scale x{s}, alpha {alpha}: log p(X) per item {[round(v, 2) for v in est.tolist()]}"
              f", mean {est.mean():.2f}; ESS of 100: {[round(v, 1) for v in ess.tolist()]}",
              flush=True)


def variance(model, bank, episodes: int) -> None:
    for n in (1, 2, 5, 20):
        x, mask = bank.x[:episodes, :n], bank.mask[:episodes, :n]
        ctx = model.prepare(x, mask)
        for M in (10, 100) if n <= 5 else (10,):
            a, b = [], []
            for _ in range(10):  # 10 chunks of 10 draws of c, each scored twice
                shared, logq = draw_c(model, x, mask, 10, ctx)
                for out in (a, b):
                    prior, _, items = nested_terms(model, x, mask, shared, 10, M, ctx)
                    out.append(prior - logq + items.sum(-1))
            a, b = torch.cat(a), torch.cat(b)
            total, inner = 0.5 * (a.var(0) + b.var(0)), 0.5 * (a - b).var(0)
            print(f"{n:2d} items, M {M:3d}: var log w over 100 draws of c "
                  f"{[round(v, 1) for v in total.tolist()]}, of it inner noise "
                  f"{[round(v, 1) for v in inner.tolist()]}", flush=True)


def snis(model, bank, episodes: int) -> None:
    for t in (0, 1, 2):
        x, mask = bank.x[:episodes, : t + 1], bank.mask[:episodes, : t + 1]
        ctx = model.prepare(x, mask)
        den, num = [], []
        for _ in range(2):  # 2 chunks of 50 draws of c from q(c | x_<=t)
            shared, logq = draw_c(model, x, mask, 50, ctx)
            prior, _, items = nested_terms(model, x, mask, shared, 50, 10, ctx)
            a = prior - logq + items[..., :t].sum(-1)
            den.append(a)
            num.append(a + items[..., t])
        nll = torch.logsumexp(torch.cat(den), 0) - torch.logsumexp(torch.cat(num), 0)
        ess = 1 / (torch.softmax(torch.cat(den), 0) ** 2).sum(0)
        se = nll.std() / episodes**0.5
        print(f"{t} shots: self-normalized NLL {nll.mean():.2f} (se {se:.2f}), "
              f"median ESS {ess.median():.1f} of 100", flush=True)


def ais(model, bank, episodes: int, sizes=(1, 2), steps=(0, 30, 100, 300, 1000)) -> None:
    out = {}
    for S in steps:
        t0 = time.perf_counter()
        lm = {n: model.log_marginal(bank.x[:episodes, :n], bank.mask[:episodes, :n], 8,
                                    ais=AIS(steps=S)) for n in sizes}
        nll = {f"{n - 1} shots": -(lm[n] - lm.get(n - 1, 0.0)) for n in sizes
               if n == 1 or n - 1 in lm}
        out[S] = {k: v.tolist() for k, v in nll.items()}
        print(f"S={S:5d} K=8: " + ", ".join(f"{k} {v.mean():.2f}" for k, v in nll.items())
              + f", -log p of {sizes[-1]} items {-lm[sizes[-1]].mean():.2f}"
              f" ({time.perf_counter() - t0:.0f} s)", flush=True)
        print(json.dumps({S: out[S]}), flush=True)  # per episode, kept if a later S is cut
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("probe", choices=("widen", "variance", "snis", "ais"))
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--sizes", default="1,2", help="ais: set sizes n (items of the prefixes)")
    p.add_argument("--steps", default="0,30,100,300,1000", help="ais: numbers of AIS steps S")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, _ = model_from_checkpoint("models/ns-medium-omniglot.pt")
    bank, _ = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    default = {"widen": 2, "variance": 4, "snis": 20, "ais": 20}[args.probe]
    episodes = args.episodes or default
    if args.probe == "ais":  # AIS takes gradients itself
        ais(model, bank, episodes, tuple(int(v) for v in args.sizes.split(",")),
            tuple(int(v) for v in args.steps.split(",")))
        return
    with torch.no_grad():
        globals()[args.probe](model, bank, episodes)


if __name__ == "__main__":
    main()
