"""Subcommands of the ``ppl-fewshot`` CLI (argument wiring and the work each one does)."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from ppl_fewshot.cli import (
    augmentation_list,
    float_list,
    int_or_range,
    key_value,
    nonneg_float,
    nonneg_int,
    positive_int,
)


def known_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or a broken environment: reported in one line."""
    from ppl_fewshot.data import DataError, DataNotFoundError
    from ppl_fewshot.inference import CheckpointError, TrainingDiverged
    from ppl_fewshot.utils import RunInProgressError

    return (
        CheckpointError,
        TrainingDiverged,
        RunInProgressError,
        DataNotFoundError,
        DataError,
        KeyError,
        ValueError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        PermissionError,
    )


def sampling_arguments(p: argparse.ArgumentParser) -> None:
    """``--components {context,all}`` (which prior components a mixture-prior GMN samples)
    and ``--temperature T`` (scales of the prior of z times T; GMN and NS)."""
    p.add_argument(
        "--components",
        choices=("context", "all"),
        default="context",
        help="for a GMN with the mixture prior: draw z from the prior's components on the "
        "context drawings (new drawings of the shown character; default) or from all of them "
        "(p(x | context), which includes 'a drawing unlike these'); other models: ignored",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="multiply every scale of the prior of z by this (GMN, NS); below 1 trades "
        "variety for fidelity to the context (docs/findings.md section 12); default 1",
    )


def sample_options(
    model, components: str, shots: int, temperature: float = 1.0
) -> dict[str, Any]:
    """Keyword arguments of ``model.sample`` for ``--components`` and ``--temperature``.

    Only a mixture-prior GMN with context items takes ``components`` (every other model
    samples ``p(x | context)``); a temperature other than 1 needs a model whose ``sample``
    takes one (``ValueError`` otherwise).
    """
    kw: dict[str, Any] = {}
    if getattr(model, "prior_family", None) == "mixture" and shots > 0:
        kw["components"] = components
    if temperature != 1.0:
        if "temperature" not in inspect.signature(model.sample).parameters:
            raise ValueError(f"model {model.name!r} has no sampling temperature (GMN and NS do)")
        kw["temperature"] = temperature
    return kw


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the raw data (default: $PPL_FEWSHOT_DATA, then the user cache)",
    )


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- data
def cmd_data_verify(args: argparse.Namespace) -> int:
    from ppl_fewshot.data import KNOWN_FILES, DataNotFoundError, resolve_data_dir, verify

    root = resolve_data_dir(args.data_dir)
    bad = 0
    for rel in KNOWN_FILES:
        try:
            verify(rel, data_dir=root)
            status = "ok"
        except DataNotFoundError:
            status = "missing"
        except Exception as err:  # a checksum mismatch is reported, not raised
            status, bad = f"BAD ({err})", bad + 1
        print(f"{status:8s} {rel}")
    if bad:
        raise ValueError(f"{bad} file(s) in {root} failed verification")
    return 0


def cmd_data_describe(args: argparse.Namespace) -> int:
    from ppl_fewshot.data import available_protocols, get_protocol, load_split

    names = [args.protocol] if args.protocol else available_protocols()
    for name in names:
        proto = get_protocol(name)
        print(f"{name}: {proto.description}")
        for split in proto.splits:
            ds = load_split(name, split, data_dir=args.data_dir)
            ink = ds.images.float().div(255).mean().item()
            print(
                f"  {split:5s} {ds.num_classes:5d} classes x {ds.images_per_class} images "
                f"{'x'.join(map(str, ds.event_shape))}, ink {ink:.3f}, "
                f"binarization {ds.binarization}"
            )
    return 0


# -------------------------------------------------------------------------- train
def _config_from_args(args: argparse.Namespace):
    from ppl_fewshot.inference import TrainConfig
    from ppl_fewshot.inference.checkpoint import checkpoint_settings

    overrides = dict(args.set or [])
    if args.init_from:  # the checkpoint's settings, under --set
        name, settings = checkpoint_settings(args.init_from)
        if name != args.model:
            raise ValueError(f"--init-from {args.init_from} holds a {name}, not a {args.model}")
        overrides = {**settings, **overrides}
    return TrainConfig(
        model=args.model,
        model_overrides=overrides,
        protocol=args.protocol,
        steps=args.steps,
        batch_size=args.batch_size,
        set_size=args.set_size,
        num_classes=args.classes,
        sampler=args.sampler,
        binarization=args.binarization,
        augmentation=args.augmentation,
        lr=args.lr,
        grad_clip=args.grad_clip,
        weight_decay=args.weight_decay,
        objective=args.objective,
        num_particles=args.particles,
        kl_anneal_steps=args.kl_anneal,
        position_weights=args.position_weights,
        singleton_weight=args.singleton_weight,
        val_classes=args.val_classes,
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        train_classes=args.train_classes,
        seed=args.seed,
        device=args.device,
        num_workers=args.workers,
        data_dir=args.data_dir,
        init_from=args.init_from,
        validate_steps=args.validate_steps,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ppl_fewshot import models
    from ppl_fewshot.diagnostics import plot_loss_curve, save_figure
    from ppl_fewshot.inference import TrainConfig, train

    models.resolve(args.model)
    config = _config_from_args(args)
    if args.resume and (Path(args.out) / "config.json").exists():
        saved = json.loads((Path(args.out) / "config.json").read_text())
        config = TrainConfig.from_json({**saved, "device": args.device})
    models.build(config.model, **config.model_overrides)  # fail early on bad settings
    summary = train(
        config, args.out, resume=args.resume, progress=None if not args.quiet else False,
        time_limit=args.time_limit,
    )
    fig, _ = plot_loss_curve(Path(args.out) / "metrics.jsonl")
    save_figure(fig, Path(args.out) / "loss.png")
    print(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "model",
                    "steps",
                    "wall_time_s",
                    "final_train_loss_nats_per_item",
                    "final_val_loss_nats_per_item",
                    "stopped_early",
                )
            }
        )
    )
    return 0


# ------------------------------------------------------------------------- sample
def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from ppl_fewshot.diagnostics import plot_sample_grid, save_figure
    from ppl_fewshot.inference import model_from_checkpoint
    from ppl_fewshot.utils import seed_everything

    seed_everything(args.seed)
    model, _ = model_from_checkpoint(args.checkpoint)
    if args.context:
        from ppl_fewshot.data.user_images import load_image_folder

        context = load_image_folder(args.context).unsqueeze(0)  # one set
    else:
        from ppl_fewshot.inference.eval_data import test_bank

        bank, _ = test_bank(
            args.protocol, 1, max(args.shots, 1), args.rows, "distinct", args.seed, args.data_dir
        )
        context = bank.x[:, : args.shots]
    with torch.no_grad():
        kw = sample_options(model, args.components, context.shape[1], args.temperature)
        samples = model.sample(context, args.num, **kw)
    fig, _ = plot_sample_grid(context, samples, title=f"{context.shape[1]} shots -> samples")
    print(save_figure(fig, args.out))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from ppl_fewshot.inference.checkpoint import export_checkpoint, training_budget
    from ppl_fewshot.inference.report import budget_text

    dtype = {"float32": None, "float16": torch.float16}[args.dtype]
    state = export_checkpoint(args.checkpoint, args.out, dtype=dtype,
                              settings=dict(args.set or []))
    digest = sha256_file(args.out)
    print(f"{args.out}: {state['model_name']}, {budget_text(training_budget(state))}, "
          f"sha256 {digest}")
    return 0


def register_all(sub: argparse._SubParsersAction) -> None:
    """Add every subcommand to ``sub``."""
    from ppl_fewshot.cli_evaluate import add_evaluate
    from ppl_fewshot.cli_figures import add_figures
    from ppl_fewshot.cli_quickstart import add_quickstart
    from ppl_fewshot.cli_report import add_compare, add_report

    data = sub.add_parser("data", help="check and describe the datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=type(data))
    p = dsub.add_parser("verify", help="check the checksums of the raw data files")
    _data_dir(p)
    p.set_defaults(func=cmd_data_verify)
    p = dsub.add_parser("describe", help="class and image counts of each protocol")
    p.add_argument("--protocol", default=None)
    _data_dir(p)
    p.set_defaults(func=cmd_data_describe)

    p = sub.add_parser("train", help="train a model by SVI on episodes")
    p.add_argument("model", help="registry name, e.g. vae, gmn, ns, or the import path "
                   "package.module:Class of a model of your own (on PYTHONPATH)")
    p.add_argument("--protocol", default="gmn28")
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--batch-size", type=positive_int, default=20, help="sets per step")
    p.add_argument("--set-size", type=int_or_range, default=10, help="items per set: N or LO-HI")
    p.add_argument("--classes", type=int_or_range, default=1, help="classes per set (C_train)")
    p.add_argument(
        "--sampler", choices=("with-replacement", "distinct"), default="with-replacement"
    )
    p.add_argument(
        "--binarization",
        choices=("fixed", "dynamic", "none"),
        default=None,
        help="override the protocol's training binarization; 'none' trains on grey levels "
        "(the expected ELBO over dynamic binarizations, the guide reading grey levels)",
    )
    p.add_argument(
        "--augmentation", type=augmentation_list, default=None, metavar="LIST",
        help="override the protocol's training augmentations: 'none' or a list of rot90, "
        "flip, dilate (each makes new classes), e.g. rot90,flip,dilate on ns28",
    )
    p.add_argument("--lr", type=float_list, default=(1e-3,), help="phases, e.g. 1e-3,3e-4,1e-4")
    p.add_argument("--grad-clip", type=float, default=10.0)
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW), e.g. 0.1; 0: plain Adam")
    p.add_argument("--objective", choices=("elbo", "iwae", "iwae-dreg"), default="elbo",
                   help="iwae-dreg: the iwae bound with the doubly reparameterized gradient")
    p.add_argument("--particles", type=positive_int, default=1)
    p.add_argument("--kl-anneal", type=nonneg_int, default=0, help="steps of linear KL warm-up")
    p.add_argument(
        "--position-weights", type=float_list, default=(), metavar="LIST",
        help="weights of a sequential model's terms log p(x_t | x_<t) by position t, the last "
        "repeating: 20,1 weighs the 0-shot term like the 19 others together (GMN, CVAE)",
    )
    p.add_argument(
        "--singleton-weight", type=nonneg_float, default=0.0, metavar="W",
        help="add W x the bound of every item as a set of one: a sequential model's 0-shot "
        "term trained on every item of a batch, not one per set (one more pass per step)",
    )
    p.add_argument("--val-classes", type=nonneg_int, default=50)
    p.add_argument("--val-every", type=positive_int, default=250)
    p.add_argument("--checkpoint-every", type=positive_int, default=500)
    p.add_argument("--train-classes", type=nonneg_int, default=0, help="use only N classes (smoke)")
    p.add_argument(
        "--set",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help="model setting override, repeatable (e.g. --set z_dim=16)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    p.add_argument("--workers", type=nonneg_int, default=0, help="data loader worker processes")
    p.add_argument("--out", default="runs/train", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop (with a checkpoint; --resume continues) once this call has "
                        "trained this long, e.g. a job's wall-clock limit less a margin")
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from these weights with a fresh optimizer and this run's schedule, e.g. to "
        "continue a finished run for more steps; the model's settings are the checkpoint's "
        "(urn included), --set changes those that hold no weights (urn_concentration=null "
        "drops the urn)",
    )
    p.add_argument(
        "--validate-steps", type=nonneg_int, default=10,
        help="Pyro/torch argument checks in the first N steps only (they cost GPU syncs)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _data_dir(p)
    p.set_defaults(func=cmd_train)

    add_evaluate(sub)
    add_report(sub)
    add_compare(sub)

    p = sub.add_parser("sample", help="draw new items given a context set")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--context", default=None, help="folder of the user's own drawings (PNG, ...)")
    p.add_argument("--protocol", default="gmn28", help="else: test characters of this protocol")
    p.add_argument("--shots", type=nonneg_int, default=5)
    p.add_argument("--rows", type=positive_int, default=6)
    p.add_argument("--num", type=positive_int, default=10, help="samples per set")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--out", default="samples.png")
    sampling_arguments(p)
    _data_dir(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("export", help="copy a checkpoint without optimizer state (model zoo)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="precision of the stored weights (float16: half the file)")
    p.add_argument("--set", type=key_value, action="append", metavar="KEY=VALUE",
                   help="model setting that keeps the weights, repeatable (e.g. "
                        "--set urn_concentration=12.5: a Pólya urn over each set, any model)")
    p.set_defaults(func=cmd_export)

    add_quickstart(sub)
    add_figures(sub)
