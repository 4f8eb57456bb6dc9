"""Where the paper-size Neural Statistician's loss spikes come from: the ELBO's terms per step.

Trains ``ns`` (paper size, encoder depth 3, scale floor 0.0067, sample dropout 0.1, or any
``--set`` override) on ns28 with Adam at one learning rate, 16 sets of 5 per step, gradient
norm clipped at 10 as the trainer does, and writes one JSON line every 5 steps and at every
step whose loss exceeds 400 nats/item: the step's loss, the gradient norm before clipping,
and, for a fresh draw after the update, the reconstruction term, KL(c) and KL(z) per item
(one-sample estimates) with the extremes of the Normal parameters they come from
(docs/findings.md section 15).

    PPL_FEWSHOT_DATA=../shared/data python benchmarks/ns_spike_probe.py --steps 400 \\
        --lr 1e-3 [--set norm=layer] --out spikes.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import pyro
import torch
from pyro import poutine

from ppl_fewshot.cli import key_value
from ppl_fewshot.data.episodes import EpisodeSampler
from ppl_fewshot.data.protocols import load_split
from ppl_fewshot.inference.objectives import ELBOLoss
from ppl_fewshot.models import build


def _normal(fn):
    """The Normal inside a site's (masked, independent) distribution."""
    while not hasattr(fn, "scale"):
        fn = fn.base_dist
    return fn


@torch.no_grad()
def elbo_terms(model, x: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """One draw of the guide: reconstruction, KL(c) and KL(z) per item (single-sample
    estimates whose sum is ``Trace_ELBO``'s loss on the same draw) and the extremes of the
    Normals behind them. A Neural Statistician with one ``z`` layer."""
    ctx = model.prepare(x, mask)
    gt = poutine.trace(model.guide).get_trace(x, mask, ctx)
    mt = poutine.trace(poutine.replay(model.model, trace=gt)).get_trace(x, mask, ctx)
    n = mask.sum().item()

    def kl(site: str) -> float:
        v = gt.nodes[site]["value"]
        lq, lp = gt.nodes[site]["fn"].log_prob(v), mt.nodes[site]["fn"].log_prob(v)
        return (lq - lp).sum().item() / n

    pz, qz, qc = (_normal(t.nodes[k]["fn"]) for t, k in ((mt, "z"), (gt, "z"), (gt, "c")))
    return {
        "rec": -mt.nodes["x"]["fn"].log_prob(x).sum().item() / n, "kl_c": kl("c"), "kl_z": kl("z"),
        "pz_scale_min": pz.scale.min().item(), "pz_loc_absmax": pz.loc.abs().max().item(),
        "qz_loc_absmax": qz.loc.abs().max().item(), "qc_loc_absmax": qc.loc.abs().max().item(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=0,
                   help="steps of a linear learning-rate warm-up from 0 (0: none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="ns", help="a Neural Statistician of the registry")
    p.add_argument("--protocol", default="ns28")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="model setting override, repeatable")
    p.add_argument("--out", required=True, help="JSON lines file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(0)
    settings = {"encoder_depth": 3, "min_scale": 0.0067, "sample_dropout": 0.1}
    settings.update(dict(key_value(s) for s in args.set))
    m = build(args.model, **settings)
    loss_fn = ELBOLoss(m)
    opt = torch.optim.Adam(loss_fn.parameters(), lr=args.lr)
    sampler = EpisodeSampler(load_split(args.protocol, "train"), args.batch_size, 5, seed=0)
    t0 = time.perf_counter()
    with open(args.out, "w") as out:
        for step in range(args.steps):
            if args.warmup:
                for group in opt.param_groups:
                    group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
            ep = sampler.sample()
            x, mask = ep.x, ep.mask
            loss = loss_fn(x, mask)
            opt.zero_grad()
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(loss_fn.parameters(), 10.0)
            opt.step()
            if step % 5 and loss.item() <= 400:
                continue
            row = {"step": step, "loss": loss.item(), "grad_norm": gn.item(),
                   **elbo_terms(m, x, mask), "wall_s": round(time.perf_counter() - t0, 1)}
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
