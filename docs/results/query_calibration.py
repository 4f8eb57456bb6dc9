"""Is a trained GMN's guide q(z | x, X) calibrated given real drawings?

For each of the first ``--episodes`` episodes of the shared gmn28 test bank (C_test 1,
with-replacement, seed 0) and each number of shots, the first ``shots`` drawings are the
context; ``--sims`` new drawings are simulated from the model's own program given them
(z* ~ p(z | X), x ~ p(x | z*, X)); the guide's q(z | x, X) is drawn ``--draws`` times per
simulation. Reported per shot: the SBC rank histogram's mass in its outer bins and the
chi-square p-values of uniform ranks per latent dim (``ppl_fewshot.diagnostics.
query_sbc_ranks``), and the coverage of q's central 50% and 90% intervals
(``query_interval_coverage``). A calibrated guide has uniform ranks (outer 10% of the ranks
holding 10% of the mass) and nominal coverage; a too-narrow one piles ranks at the ends and
under-covers.

    python docs/results/query_calibration.py models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt \
        --out runs/query-calibration/zoo.json     # --proposal-scale 1.6: the guide widened
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ppl_fewshot.diagnostics import (
    query_interval_coverage,
    query_sbc_ranks,
    rank_uniformity_pvalues,
)
from ppl_fewshot.inference import model_from_checkpoint
from ppl_fewshot.inference.eval_data import test_bank
from ppl_fewshot.models.posteriors import widened_guide


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--shots", default="0,1,5,19")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--sims", type=int, default=10)
    p.add_argument("--draws", type=int, default=99)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proposal-scale", type=float, default=1.0,
                   help="check the guide widened by this factor (models.posteriors.widened_guide)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(a.checkpoint)
    bank, _ = test_bank("gmn28", 1, 20, 100, "with-replacement", 0, None)
    x = bank.x[: a.episodes]
    rows = []
    for shots in [int(s) for s in a.shots.split(",")]:
        t0 = time.perf_counter()
        ctx = x[:, :shots]
        with widened_guide(model, a.proposal_scale):  # the simulations do not use the guide
            ranks = query_sbc_ranks(model, ctx, a.sims, a.draws, seed=a.seed)
            cover = query_interval_coverage(model, ctx, a.sims, (0.5, 0.9), 10 * (a.draws + 1),
                                            seed=a.seed)
        pv = rank_uniformity_pvalues(ranks, a.draws)
        outer = ((ranks < 0.05 * (a.draws + 1)) | (ranks >= 0.95 * (a.draws + 1))).float().mean()
        row = {"shots": shots, "simulations": int(ranks.shape[0]),
               "latent_dims": int(ranks.shape[1]),
               "outer_10pct_rank_mass": round(outer.item(), 4),
               "pvalue_median": round(pv.median().item(), 6),
               "dims_p_below_0.01": int((pv < 0.01).sum()),
               "coverage_50_mean": round(cover[0.5].mean().item(), 4),
               "coverage_90_mean": round(cover[0.9].mean().item(), 4),
               "coverage_90_min": round(cover[0.9].min().item(), 4),
               "wall_s": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"checkpoint": a.checkpoint, "bank": "gmn28 test, C_test 1, with-replacement, seed 0",
           "episodes": a.episodes, "sims_per_episode": a.sims, "draws": a.draws, "seed": a.seed,
           "proposal_scale": a.proposal_scale,
           "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
