"""The work of ``ppl-fewshot evaluate`` (:mod:`ppl_fewshot.cli_evaluate`) once its arguments
are checked: the NLL table with its PSIS diagnostics, a proposal scale fitted on other
episodes (``--proposal-scale fit``), and few-shot classification."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

FREE_MODELS = ("pixel-beta-bernoulli",)  # models evaluated without a checkpoint


def fit_proposal(model, args: argparse.Namespace, plan: dict[str, Any], fit_ds) -> dict[str, Any]:
    """``--proposal-scale fit``: the best of ``--fit-scales`` for the NLL table's estimator (its K
    and shots) on ``--fit-episodes`` episodes of ``fit_ds`` (the ``--fit-split`` classes; seed
    + 1, so never the reported bank's episodes): the record of the fit, its choice under
    ``"best"``."""
    from ppl_fewshot.inference.eval_data import test_bank
    from ppl_fewshot.inference.proposal import DEFAULT_SCALES, fit_proposal_scale

    bank, path = test_bank(args.protocol, args.classes, plan["set_size"], args.fit_episodes,
                           args.sampler, args.seed + 1, args.data_dir, dataset=fit_ds,
                           split=args.fit_split)
    t0 = time.perf_counter()
    fit = fit_proposal_scale(model, bank, args.fit_scales or DEFAULT_SCALES, args.samples,
                             args.shots, seed=args.seed, progress=sys.stderr.isatty())
    return {**fit.to_dict(), "split": args.fit_split, "bank": str(path),
            "wall_time_s": round(time.perf_counter() - t0, 2)}


def nll(model, args, plan, test_ds) -> dict[str, Any]:
    """The NLL table of ``--task nll`` / ``transfer`` on the seeded bank of ``test_ds``, with its
    estimator's description, the bank's path and, unless ``--khat-episodes 0``, PSIS k-hat."""
    from ppl_fewshot.inference import nll_table
    from ppl_fewshot.inference.eval_data import test_bank
    from ppl_fewshot.inference.evaluate import describe_estimator

    bank, bank_path = test_bank(args.protocol, args.classes, plan["set_size"], args.episodes,
                                args.sampler, args.seed, args.data_dir, dataset=test_ds,
                                split=args.split)
    from ppl_fewshot.models.annealing import AIS

    exact = getattr(model, "exact_log_evidence", None) is not None and model.name in FREE_MODELS
    ais = AIS(steps=args.ais_steps, leapfrog=args.ais_leapfrog) if args.ais_steps else None
    inner = 1 if exact else args.inner_samples
    est = ("exact chain rule log p(x_t | x_<t)" if exact else
           describe_estimator(args.samples, inner, ais, args.proposal_scale))
    t0 = time.perf_counter()
    # every model scores only the asked positions (FewShotModel.conditional_log_likelihoods)
    table = nll_table(model, bank, tuple(args.shots), num_particles=args.samples,
                      progress=sys.stderr.isatty(), ais=ais, inner=inner,
                      proposal_scale=args.proposal_scale)
    if ais and not exact:
        table["ais"] = dataclasses.asdict(ais)
    out = {"c_test": args.classes, "episode_sampler": args.sampler,
           "set_size": plan["set_size"], "estimator": est, "bank": str(bank_path),
           "eval_wall_time_s": round(time.perf_counter() - t0, 2), **table}
    if not exact and args.khat_episodes:
        out["psis"] = psis(model, bank, args, ais, inner)
    return out


def psis(model, bank, args, ais=None, inner: int = 1) -> dict[str, Any]:
    """PSIS k-hat of the importance weights behind the table (the same proposal), on its first
    episodes."""
    import torch

    from ppl_fewshot.diagnostics import conditional_importance_diagnostics, summarize_khat
    from ppl_fewshot.models.posteriors import widened_guide

    n = min(args.khat_episodes, bank.x.shape[0])
    dev = next(model.parameters(), torch.zeros(())).device
    with widened_guide(model, args.proposal_scale):
        rows = [conditional_importance_diagnostics(model, bank.x[i : i + 8].to(dev),
                                                   bank.mask[i : i + 8].to(dev), args.shots,
                                                   args.samples, ais=ais, inner=inner)
                for i in range(0, n, 8)]
    khat = torch.cat([r["khat"] for r in rows], 0)
    ess = torch.cat([r["ess"] for r in rows], 0)
    nested = {"inner_particles": inner} if inner != 1 else {}
    return {"episodes": n, "num_particles": args.samples, **nested, **summarize_khat(khat),
            "ess_median": [round(float(c[~torch.isnan(c)].median()), 1) for c in ess.T]}


def classify_tasks(model, args, plan, test_ds) -> list[dict[str, Any]]:
    """One result row per (ways, shots, method) of ``plan`` on seeded tasks of ``test_ds``."""
    from ppl_fewshot.inference.classify import classify, make_tasks

    rows = []
    exact = hasattr(model, "exact_log_predictive")
    for n in plan["ways"]:
        for k in args.k_shots:
            tasks = make_tasks(test_ds, args.tasks, n, k, args.queries, seed=args.seed)
            for m in plan["methods"]:
                t0 = time.perf_counter()
                r = classify(model, tasks, m, num_particles=args.classify_samples, exact=exact,
                             seed=args.seed, progress=sys.stderr.isatty(),
                             norm_stats=args.norm_stats,
                             inner=args.inner_samples if m == "likelihood" else 1,
                             proposal_scale=args.proposal_scale)
                rows.append({**r, "eval_wall_time_s": round(time.perf_counter() - t0, 2)})
    return rows
