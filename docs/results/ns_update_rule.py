"""Neural Statistician: classify by how much a class's q(c | X_c) moves when the query joins it.

Min-KL classification compares q(c | {x}) with q(c | X_c) (either direction; docs/findings.md
section 2). This scores each class by the KL between q(c | X_c u {x}) and q(c | X_c) instead
(both directions, and their sum with reverse min-KL): the class whose context posterior the
query moves least. Seeded tasks of ``ppl_fewshot.inference.classify.make_tasks``.

    python docs/results/ns_update_rule.py models/ns-medium-omniglot.pt --protocol ns28 \
        --out docs/results/ns-update-rule/ns28.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyro.distributions as dist
import torch

from ppl_fewshot.data import load_split
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.classify import accuracy, make_tasks, min_kl_scores, predict

SETTINGS = ((5, 1, 200), (20, 1, 500), (20, 5, 200))  # ways, shots, tasks


def update_scores(model, tasks, chunk: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``-KL(q(c | X_c u {x}) || q(c | X_c))`` and the reverse, ``[N, Q, ways]`` each."""
    N, W, S = tasks.num_tasks, tasks.ways, tasks.shots
    Q = tasks.query.shape[1]
    fwd, rev = [], []
    with torch.no_grad():
        for i in range(0, N, chunk):
            sup, qry = tasks.support[i : i + chunk], tasks.query[i : i + chunk]
            n = sup.shape[0]
            hs = model.encoder(sup.reshape(n * W, S, *sup.shape[3:])).reshape(n, 1, W, S, -1)
            hq = model.encoder(qry.reshape(n * Q, 1, *qry.shape[2:])).reshape(n, Q, 1, 1, -1)
            H = hs.shape[-1]
            hs = hs.expand(n, Q, W, S, H)
            joined = torch.cat([hs, hq.expand(n, Q, W, 1, H)], 3).reshape(-1, S + 1, H)
            ones = torch.ones(joined.shape[:2], dtype=torch.bool)

            def q_c(h, m):
                base = model.posterior_c(h, m).base_dist
                return dist.Normal(base.loc[:, 0], base.scale[:, 0]).to_event(1)

            a, b = q_c(joined, ones), q_c(hs.reshape(-1, S, H), ones[:, :S])
            fwd.append(-torch.distributions.kl_divergence(a, b).reshape(n, Q, W))
            rev.append(-torch.distributions.kl_divergence(b, a).reshape(n, Q, W))
    return torch.cat(fwd), torch.cat(rev)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--protocol", default="ns28")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(a.checkpoint)
    model.eval()
    ds = load_split(a.protocol, "test")
    rows = []
    for ways, shots, n in SETTINGS:
        t0 = time.perf_counter()
        tasks = make_tasks(ds, n, ways, shots, 1, seed=a.seed)
        rev = min_kl_scores(model, tasks, reverse=True)
        up, up_rev = update_scores(model, tasks)
        scores = {"min-kl (forward)": min_kl_scores(model, tasks), "min-kl-reverse": rev,
                  "update KL(q(c|X+x) || q(c|X))": up, "update KL(q(c|X) || q(c|X+x))": up_rev,
                  "min-kl-reverse + update": rev + up}
        for name, s in scores.items():
            acc = accuracy(predict(s, a.seed), tasks.labels)
            rows.append({"ways": ways, "shots": shots, "tasks": n, "method": name,
                         "accuracy": acc["accuracy"], "ci95": acc["ci95"]})
            print(json.dumps(rows[-1]), flush=True)
        print(f"{ways}-way {shots}-shot: {time.perf_counter() - t0:.0f} s", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"checkpoint": a.checkpoint, "protocol": a.protocol,
                                       "seed": a.seed, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
