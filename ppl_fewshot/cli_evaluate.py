"""``ppl-fewshot evaluate``: one evaluation protocol for every model.

``evaluate`` scores one model on fixed, seeded test data and writes ``<task>.json``,
``<task>.csv`` and ``<task>.md`` into ``--out``:

* ``--task nll``: the conditional NLL table (TARGETS.md table 1) on a cached episode bank;
* ``--task classify``: N-way K-shot classification (TARGETS.md table 2);
* ``--task transfer``: both on ``mnist28`` (TARGETS.md table 3 and the NS paper's
  Omniglot -> MNIST 10-way numbers), C_test = 1 and 10-way by default.

The model comes from ``--checkpoint`` or, for the checkpoint-free baseline
``--model pixel-beta-bernoulli``, is fitted by empirical Bayes on the train split of
``--train-protocol`` (saved as a checkpoint in ``--out``, so the numbers can be
reproduced). ``--proposal-scale fit`` first fits how wide the guide should draw as the NLL
table's proposal, on episodes of other classes (:mod:`ppl_fewshot.inference.proposal`).
Every argument is checked before anything is written; the work itself is in
:mod:`ppl_fewshot.cli_evaluate_tasks`.
``ppl-fewshot report`` (:mod:`ppl_fewshot.cli_report`) gathers the result JSONs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from ppl_fewshot import cli_evaluate_tasks as tasks
from ppl_fewshot.cli import (
    float_list,
    int_list,
    name_list,
    nonneg_int,
    positive_float,
    positive_int,
)
from ppl_fewshot.cli_commands import sha256_file
from ppl_fewshot.cli_evaluate_tasks import FREE_MODELS

TASKS = ("nll", "classify", "transfer")


def _task(text: str) -> str:
    if text not in TASKS:
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; available: {', '.join(TASKS)}")
    return text


def _split(text: str) -> str:
    from ppl_fewshot.inference.eval_data import SPLITS

    if text not in SPLITS:
        raise argparse.ArgumentTypeError(f"unknown split {text!r}; use one of {', '.join(SPLITS)}")
    return text


def _positive_list(text: str) -> tuple[int, ...]:
    vals = tuple(positive_int(t) for t in text.split(",") if t)
    if not vals:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive integers")
    return vals


def _proposal_scale(text: str) -> float | str:
    return "fit" if text == "fit" else positive_float(text)


def _methods(text: str) -> tuple[str, ...]:
    from ppl_fewshot.inference.classify import METHODS

    return name_list(text, METHODS, "method", "auto")  # "auto": () = every applicable one


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser("evaluate", help="score a model on fixed, seeded test episodes and tasks")
    p.add_argument("--checkpoint", default=None, help="a checkpoint written by train")
    p.add_argument("--model", default=None,
                   help=f"instead of a checkpoint: {', '.join(FREE_MODELS)} (fitted on the fly)")
    p.add_argument("--task", type=_task, default="nll", help="nll, classify or transfer")
    p.add_argument("--protocol", default=None, help="test protocol (default gmn28; transfer: "
                                                     "mnist28)")
    p.add_argument("--split", type=_split, default="test",
                   help="which classes the episodes and tasks come from: the protocol's test "
                        "classes (default), or, for a checkpoint, the classes it trained on "
                        "('train') or the training classes it held out for validation ('val'), "
                        "as its training run split them: generalization gaps, not results")
    p.add_argument("--train-protocol", default=None,
                   help="where --model baselines are fitted (default: --protocol, gmn28 for the "
                        "test-only MNIST protocols)")
    p.add_argument("--classes", type=positive_int, default=1, help="C_test of the NLL table")
    p.add_argument("--shots", type=int_list, default=(0, 1, 2, 3, 4, 5, 10, 19))
    p.add_argument("--set-size", type=positive_int, default=20)
    p.add_argument("--samples", type=positive_int, default=1000,
                   help="importance samples K of the NLL table")
    p.add_argument("--ais-steps", type=nonneg_int, default=0,
                   help="anneal the K importance samples of the NLL table through this many "
                   "HMC-bridged distributions (annealed importance sampling; 0 = plain IS)")
    p.add_argument("--ais-leapfrog", type=positive_int, default=2,
                   help="leapfrog steps per HMC transition of --ais-steps")
    p.add_argument("--inner-samples", type=positive_int, default=1,
                   help="NLL table and likelihood classification of a model with a per-set "
                   "latent (the Neural Statistician) by nested importance sampling: M draws of "
                   "every item's latents per draw of the set latent, K x M item evaluations "
                   "(1 = plain importance sampling)")
    p.add_argument("--episodes", type=positive_int, default=659)
    p.add_argument("--khat-episodes", type=nonneg_int, default=50,
                   help="PSIS k-hat of the NLL estimates on the first N episodes (0: off)")
    p.add_argument("--label", default=None,
                   help="row label (default: model name and the settings that differ from it)")
    p.add_argument("--sampler", choices=("with-replacement", "distinct"),
                   default="with-replacement")
    p.add_argument("--ways", type=_positive_list, default=None,
                   help="N of N-way classification (default 5,20; transfer: 10)")
    p.add_argument("--k-shots", type=_positive_list, default=(1, 5), help="K of K-shot")
    p.add_argument("--methods", type=_methods, default=(),
                   help="likelihood,cosine,min-kl or auto (all the model supports)")
    p.add_argument("--tasks", type=positive_int, default=1000, help="classification tasks each")
    p.add_argument("--queries", type=positive_int, default=1, help="queries per class and task")
    p.add_argument("--binarization", choices=("fixed", "dynamic", "none"), default=None,
                   help="classification: override the test split's binarization ('none': "
                        "grey-level inputs; min-KL and cosine only)")
    p.add_argument("--norm-stats", choices=("running", "task"), default="running",
                   help="classification, batch-norm models: 'running' averages (default) or "
                        "each task's own statistics ('task', transductive)")
    p.add_argument("--proposal-scale", type=_proposal_scale, default=1.0,
                   help="importance sampling (NLL table, likelihood classification) from the "
                        "guide with its Normal scales multiplied by this (default 1: the guide "
                        "as trained; above 1 when the guide is too narrow, see "
                        "diagnostics.query_sbc_ranks), or 'fit' (NLL table): the best of "
                        "--fit-scales for this K and these shots on --fit-episodes episodes of "
                        "the --fit-split classes (inference.proposal.fit_proposal_scale)")
    p.add_argument("--fit-scales", type=float_list, default=None,
                   help="the candidate scales of --proposal-scale fit (default 1,1.25,1.5,2: "
                        "inference.proposal.DEFAULT_SCALES)")
    p.add_argument("--fit-episodes", type=positive_int, default=20,
                   help="episodes of --proposal-scale fit (seeded by --seed + 1)")
    p.add_argument("--fit-split", type=_split, default="val",
                   help="the classes --proposal-scale fit draws its episodes from: by default "
                        "the training classes the checkpoint held out ('val'), not the ones "
                        "the table reports")
    p.add_argument("--classify-samples", type=positive_int, default=50,
                   help="importance samples K of likelihood classification")
    p.add_argument("--fit-steps", type=positive_int, default=500,
                   help="empirical-Bayes steps of --model pixel-beta-bernoulli")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seeds the episodes, the tasks and the estimators' draws")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_evaluate)


# ----------------------------------------------------------------------- the model
def _load_model(args: argparse.Namespace, device) -> tuple[Any, dict[str, Any], Any]:
    """``(model, provenance, fit)``: from ``--checkpoint``, or a free baseline to fit later."""
    from ppl_fewshot import models
    from ppl_fewshot.inference import model_from_checkpoint
    from ppl_fewshot.inference.checkpoint import training_budget

    if (args.checkpoint is None) == (args.model is None):
        raise ValueError("give exactly one of --checkpoint CK or --model NAME "
                         f"(checkpoint-free models: {', '.join(FREE_MODELS)})")
    if args.checkpoint is not None:
        model, state = model_from_checkpoint(args.checkpoint, device=device)
        budget = training_budget(state)
        return model, {"checkpoint": str(args.checkpoint),
                       "checkpoint_sha256": sha256_file(args.checkpoint),
                       "training_budget": budget, "train_config": state["train_config"]}, None
    if args.model not in FREE_MODELS:
        raise ValueError(f"model {args.model!r} needs a trained --checkpoint; without one only "
                         f"{', '.join(FREE_MODELS)} can be evaluated")
    if args.model not in models.available():
        raise KeyError(f"model {args.model!r} is not available in this installation")
    return models.build(args.model).to(device), {}, "empirical-bayes"


def _fit_free_model(model, args: argparse.Namespace, train_ds, out: Path) -> dict[str, Any]:
    """Empirical Bayes on the train classes; the fitted model is saved as a checkpoint."""
    from ppl_fewshot.inference import save_checkpoint

    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    import torch

    gen = torch.Generator().manual_seed(args.seed)  # dynamic binarization draws are seeded
    images = train_ds.to_float(train_ds.images, generator=gen).to(dev)
    losses = model.fit_empirical_bayes(images, num_steps=args.fit_steps)
    wall = round(time.perf_counter() - t0, 2)
    ck = out / f"{args.model}.pt"
    budget = {"steps": args.fit_steps, "wall_time_s": wall, "device": str(dev),
              "fit": f"empirical Bayes (type-II ML) on {train_ds.name}, "
                     f"{train_ds.num_classes} classes", "final_loss_nats_per_image":
                  round(losses[-1], 4)}
    save_checkpoint(ck, model, step=args.fit_steps, extra=budget)
    return {"checkpoint": str(ck), "checkpoint_sha256": sha256_file(ck),
            "training_budget": budget, "train_config": {"protocol": train_ds.name}}


# ----------------------------------------------------------------------- the work
def _plan(args: argparse.Namespace, model, test_ds) -> dict[str, Any]:
    """Check every argument against the model and data; nothing is written before this."""
    from ppl_fewshot.inference.classify import applicable_methods, check_method

    plan: dict[str, Any] = {"nll": args.task in ("nll", "transfer"),
                            "classify": args.task in ("classify", "transfer")}
    if args.binarization is not None and plan["nll"]:
        raise ValueError("--binarization applies to classification; the NLL table scores the "
                         "protocol's binary test data")
    if plan["nll"]:
        if not args.shots:
            raise ValueError("--shots needs at least one number of shots")
        if args.inner_samples > 1 and args.ais_steps:
            raise ValueError("--inner-samples and --ais-steps are two estimators; choose one")
        plan["set_size"] = max(args.set_size, max(args.shots) + 1)
        if args.classes > test_ds.num_classes:
            raise ValueError(f"--classes {args.classes} exceeds the {test_ds.num_classes} "
                             f"{args.split} "
                             f"classes of {args.protocol}")
        if args.sampler == "distinct" and plan["set_size"] > args.classes * \
                test_ds.images_per_class:
            raise ValueError(f"sampler 'distinct' cannot draw {plan['set_size']} distinct items "
                             f"from {args.classes} class(es) of {test_ds.images_per_class} "
                             "drawings; lower --set-size or raise --classes")
    if plan["classify"]:
        ways = args.ways or ((10,) if args.task == "transfer" else (5, 20))
        methods = args.methods or tuple(applicable_methods(model))
        for m in methods:
            check_method(model, m)
        if args.inner_samples > 1 and not plan["nll"] and "likelihood" not in methods:
            raise ValueError("--inner-samples nests the importance samples of the likelihood "
                             f"classifier; the methods {', '.join(methods)} use none")
        if args.binarization == "none" and "likelihood" in methods:
            raise ValueError("likelihood classification scores binary data; with "
                             "--binarization none use min-kl, min-kl-reverse or cosine")
        for n in ways:
            if n > test_ds.num_classes:
                raise ValueError(f"{n}-way classification needs {n} classes, but {args.protocol} "
                                 f"has {test_ds.num_classes} {args.split} classes")
        for k in args.k_shots:
            if k + args.queries > test_ds.images_per_class:
                raise ValueError(f"{k}-shot tasks with {args.queries} query per class need "
                                 f"{k + args.queries} drawings per class; {args.protocol} has "
                                 f"{test_ds.images_per_class}")
        if args.norm_stats == "task":
            from ppl_fewshot.nn import batch_norm_layers

            if not batch_norm_layers(model):
                raise ValueError(f"--norm-stats task needs a model with batch normalization; "
                                 f"{model.name!r} has none")
        plan.update(ways=ways, methods=methods)
    if args.proposal_scale == "fit":
        if args.task != "nll":
            raise ValueError("--proposal-scale fit fits the NLL table's estimator (--task nll); "
                             "give classification a number")
        if args.ais_steps or args.inner_samples > 1:
            raise ValueError("--proposal-scale fit fits plain importance sampling; give "
                             "--ais-steps and --inner-samples a number")
    if args.inner_samples > 1 and not model.has_set_latent:
        raise ValueError(f"--inner-samples nests the importance samples of a per-set "
                         f"latent; {model.name!r} has none (its items have their own "
                         "weights already)")
    return plan


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from ppl_fewshot import models
    from ppl_fewshot.data import get_protocol, load_split
    from ppl_fewshot.inference.eval_data import eval_split, training_class_overlap
    from ppl_fewshot.inference.report import (
        budget_text,
        classification_markdown,
        nll_markdown,
        psis_markdown,
    )
    from ppl_fewshot.utils import atomic_write_text, resolve_device, source_commit, versions

    source_commit()  # the commit of the code imported now, not the checkout's when it ends

    device = resolve_device(args.device)
    model, prov, fit = _load_model(args, device)
    if args.split != "test":
        if args.task == "transfer":
            raise ValueError("--task transfer scores the MNIST test digits; --split train/val "
                             "take the checkpoint's own training protocol (use --task nll or "
                             "classify)")
        args.protocol = args.protocol or prov.get("train_config", {}).get("protocol")
    args.protocol = args.protocol or ("mnist28" if args.task == "transfer" else "gmn28")
    proto = get_protocol(args.protocol)
    test_ds = eval_split(args.split, proto.name,  # a free baseline: fitted on all of train
                         prov.get("train_config") if fit is None else None, args.data_dir)
    if args.binarization is not None:
        test_ds = dataclasses.replace(test_ds, binarization=args.binarization)
    plan = _plan(args, model, test_ds)
    fit_ds = (eval_split(args.fit_split, proto.name, prov.get("train_config"), args.data_dir)
              if args.proposal_scale == "fit" else None)
    train_ds, trained_on = None, prov.get("train_config", {}).get("protocol")
    if fit is not None:
        trained_on = args.train_protocol or ("gmn28" if proto.transfer_only else proto.name)
        train_ds = load_split(trained_on, "train", data_dir=args.data_dir)
    overlap = (training_class_overlap(trained_on, proto.name, test_ds, args.data_dir)
               if args.split == "test" else None)  # warns when there is one
    # ---- every check passed: from here on we write
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if train_ds is not None:
        prov = _fit_free_model(model, args, train_ds, out)
    model.eval()
    torch.manual_seed(args.seed)  # the estimators' draws too: a rerun repeats every number
    label = f"{args.label or models.label(model)} (ppl_fewshot)"
    if args.split != "test":
        label += f", {args.split} classes"
    result: dict[str, Any] = {
        "model": model.name, "label": label, "task": args.task, "protocol": proto.name,
        "split": args.split, "split_classes": test_ds.num_classes,
        "protocol_info": proto.to_dict(), "test_binarization": test_ds.binarization,
        "seed": args.seed, "device": str(device),
        "versions": versions(), **prov,
    }
    if fit_ds is not None:
        result["proposal_fit"] = fit = tasks.fit_proposal(model, args, plan, fit_ds)
        args.proposal_scale = fit["best"]  # the table, its PSIS and its label use the fitted one
    if args.proposal_scale != 1:
        result["proposal_scale"] = args.proposal_scale
    if overlap is not None:
        result["training_class_overlap"] = {k: v for k, v in overlap.items() if k != "names"}
    md = [f"Protocol `{proto.name}` ({proto.description}); model `{label}`; budget: "
          f"{budget_text(result.get('training_budget') or {}) or 'unknown'}; checkpoint sha256 "
          f"`{str(result.get('checkpoint_sha256'))[:16]}...`.\n"]
    if fit_ds is not None:
        md.append(f"Proposal scale fitted on {fit['episodes']} episodes of the {fit['split']} "
                  f"classes: x {fit['best']:g} (mean NLL per item at each scale: " + ", ".join(
                      f"x {s:g} {v:.2f}" for s, v in zip(fit["scales"], fit["nll"])) + ").\n")
    csv = []
    if plan["nll"]:
        nll = tasks.nll(model, args, plan, test_ds)
        per_episode = nll.pop("per_episode")
        if args.task == "nll":  # flat layout (kept for existing readers of nll.json)
            result.update(nll)
        else:
            result["nll"] = nll
        md.append(f"Conditional NLL: sampler `{nll['episode_sampler']}`, {nll['episodes']} "
                  f"episodes of {nll['set_size']}, {nll['estimator']}; mean (standard error), "
                  f"nats.\n\n" + nll_markdown([(label, nll)]) + "\n")
        if "psis" in nll:
            md.append(psis_markdown([(label, nll)]) + "\n")
        csv.append("kind,c_test,shots,nll,se\n" + "".join(
            f"nll,{args.classes},{s},{v},{e}\n"
            for s, v, e in zip(nll["shots"], nll["nll"], nll["se"])))
    if plan["classify"]:
        rows = tasks.classify_tasks(model, args, plan, test_ds)
        result["classification"] = rows
        md.append(f"Few-shot classification on `{proto.name}`: {args.tasks} seeded tasks per "
                  f"setting, {args.queries} query per class, test binarization "
                  f"`{test_ds.binarization}`" + (
                      "; batch norm with each task's own statistics (transductive)"
                      if args.norm_stats == "task" else "") +
                  "; accuracy % [95% Wilson interval].\n\n"
                  + classification_markdown([(label, rows)]) + "\n")
        csv.append("kind,method,ways,shots,accuracy,ci_low,ci_high,estimator\n" + "".join(
            f"classify,{r['method']},{r['ways']},{r['shots']},{r['accuracy']},{r['ci95'][0]},"
            f"{r['ci95'][1]},\"{r['estimator']}\"\n" for r in rows))
    if plan["nll"]:  # one row per episode of the bank, for paired comparisons
        atomic_write_text(out / "nll_episodes.csv", "episode," + ",".join(
            f"shots_{s}" for s in nll["shots"]) + "\n" + "".join(
            f"{i}," + ",".join(str(v) for v in row) + "\n" for i, row in enumerate(per_episode)))
    atomic_write_text(out / f"{args.task}.json", json.dumps(result, indent=2))
    atomic_write_text(out / f"{args.task}.csv", "\n".join(csv))
    text = "\n".join(md)
    atomic_write_text(out / f"{args.task}.md", text)
    print(text)
    return 0

