"""How noisy is each training objective's gradient for a trained GMN, as K grows?

For a fixed batch (the first ``--episodes`` episodes of the shared gmn28 test bank: C_test 1,
with-replacement, seed 0, 20 items each), every objective ``NAME:K`` of ``--objectives``
(``elbo:K``: the ELBO averaged over K draws; ``iwae:K``: the importance weighted bound;
``iwae-dreg:K``: the same bound with the doubly reparameterized gradient) is differentiated
``--draws`` times with fresh draws, and the signal-to-noise ratio |mean| / sd of the gradient
is reported for the guide's parameters, the model's and those both use
(``ppl_fewshot.inference.objective_gradient_snr``). Theory [Rainforth et al. 2018]: the
IWAE guide's SNR falls as 1 / sqrt(K), the model's rises as sqrt(K); DReG's guide SNR rises.

    python docs/results/gradient_snr.py \
        models/gmn-small-mixture-ctrain1-rotflip-urn-iwae-omniglot.pt \
        --out docs/results/iwae/gradient-snr-iwae5.json     # iwae.sh snr runs it
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank
from ppl_fewshot.inference.gradients import objective_gradient_snr

DEFAULT = "elbo:1,elbo:5,iwae:5,iwae-dreg:5,iwae:20,iwae-dreg:20,iwae:80,iwae-dreg:80"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--objectives", default=DEFAULT, help=f"NAME:K,... (default {DEFAULT})")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--draws", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(a.checkpoint)
    model.train()
    bank, _ = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    x = bank.x[: a.episodes]
    rows = []
    for spec in a.objectives.split(","):
        name, k = spec.split(":")
        t0 = time.perf_counter()
        snr = objective_gradient_snr(model, x, None, name, int(k), a.draws, a.seed)
        row = {"objective": name, "K": int(k), "wall_s": round(time.perf_counter() - t0, 1),
               **{group: {key: (round(v, 4) if isinstance(v, float) else v)
                          for key, v in s.as_dict().items()} for group, s in snr.items()}}
        rows.append(row)
        print(json.dumps({"objective": name, "K": int(k), "wall_s": row["wall_s"],
                          **{g: (row[g]["pooled_snr"], row[g]["median_snr"]) for g in snr}}),
              flush=True)
    out = {"checkpoint": a.checkpoint, "batch": f"the first {a.episodes} episodes of the gmn28 "
           "test bank (C_test 1, with-replacement, seed 0, 20 items)", "draws": a.draws,
           "seed": a.seed, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
