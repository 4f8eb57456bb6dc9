"""Fit the Pólya urn's concentration on training episodes (docs/findings.md section 34).

``python docs/results/ns_urn_fit.py [--episodes 5000] [--out FILE]`` draws episodes of 20 items
of one character from gmn28's *training* classes with the protocol's sampler (with
replacement, as the test bank and the authors' episodes), reads the partition of each (which
items are exact repeats) and prints, as JSON, the maximum-likelihood ``theta`` of the urn
(:func:`ppl_fewshot.models.urn.fit_concentration`) for a Dirichlet process (atoms 0) and for
20 atoms, with the mean log partition probability per episode under each fit. The partition
term of ``log p(X)`` does not involve the set model, so this is the exact empirical-Bayes fit
whatever the Neural Statistician is. Seconds on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter

import torch

from ppl_fewshot.data import load_split
from ppl_fewshot.data.episodes import episode_bank
from ppl_fewshot.models.urn import fit_concentration, partition_log_prob, set_partition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = load_split("gmn28", "train")
    bank = episode_bank(ds, args.episodes, 20, 1, sampler="with-replacement", seed=args.seed)
    parts = [set_partition(x) for x in bank.x]
    distinct = Counter(len(p) for p in parts)
    out: dict = {"protocol": "gmn28", "split": "train", "episodes": args.episodes,
                 "set_size": 20, "sampler": "with-replacement", "seed": args.seed,
                 "mean_distinct": sum(len(p) for p in parts) / len(parts),
                 "distinct_counts": dict(sorted(distinct.items())), "fits": {}}
    for atoms in (0, 20):
        theta = fit_concentration(parts, atoms)
        ll = sum(partition_log_prob(p, theta, atoms) for p in parts) / len(parts)
        out["fits"][f"atoms={atoms}"] = {"theta": theta, "mean_log_partition_prob": ll}
    ll_inf = sum(partition_log_prob(p, math.inf, 20) for p in parts) / len(parts)
    out["fits"]["atoms=20, theta=inf"] = {"theta": "inf", "mean_log_partition_prob": ll_inf}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
