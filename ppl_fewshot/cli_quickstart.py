"""``ppl-fewshot quickstart``: the library's main job in a few minutes on a laptop CPU.

Loads the pretrained Generative Matching Network of the model zoo (``models/``) -- or,
with ``--train`` or when no checkpoint is there, trains the first few-shot model briefly --
and shows what the library is for: it takes five drawings of characters it never saw
(Omniglot's evaluation alphabets when the data is found, else the built-in synthetic
``glyphs``), draws new ones, and scores new drawings at 0..10 shots. Writes
``samples.png``, ``nll_by_shots.png``, ``summary.json`` (and ``loss.png`` when it trained).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ppl_fewshot.cli import nonneg_int, positive_int
from ppl_fewshot.cli_commands import sample_options, sampling_arguments

if TYPE_CHECKING:
    from ppl_fewshot.data import ClassDataset

ZOO_DEFAULT = "models/gmn-small-mixture-ctrain1-rotflip-omniglot.pt"


def zoo_checkpoint(name: str = ZOO_DEFAULT) -> Path | None:
    """The zoo checkpoint, looked up in the working folder and beside the package source."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / name).is_file():
            return root / name
    return None


def add_quickstart(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="train briefly, then sample and score new characters")
    p.add_argument("--out", default="runs/quickstart", help="output folder (replaced)")
    p.add_argument(
        "--checkpoint", default=None, help=f"pretrained model (default: {ZOO_DEFAULT} when present)"
    )
    p.add_argument("--train", action="store_true", help="train from scratch instead")
    p.add_argument("--steps", type=positive_int, default=400, help="training steps with --train")
    p.add_argument("--model", default=None, help="model name (default: gmn-small, else vae-small)")
    p.add_argument("--eval-episodes", type=positive_int, default=40)
    p.add_argument(
        "--samples", type=positive_int, default=50, help="importance samples for the NLL"
    )
    sampling_arguments(p)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_quickstart)


def _datasets(data_dir: str | None, seed: int):
    from ppl_fewshot.data import DataNotFoundError, load_split, split_validation

    try:
        train_all = load_split("gmn28", "train", data_dir=data_dir)
        test = load_split("gmn28", "test", data_dir=data_dir)
        protocol = "gmn28"
    except DataNotFoundError as err:
        print(
            f"Omniglot not found ({err}); using the built-in synthetic 'glyphs' dataset instead.",
            file=sys.stderr,
        )
        train_all = load_split("glyphs", "train", data_dir=data_dir)
        test = load_split("glyphs", "test", data_dir=data_dir)
        protocol = "glyphs"
    train, val = split_validation(train_all, min(20, train_all.num_classes // 5), seed=seed)
    return protocol, train, val, test


def _unseen_by(state: dict, protocol: str, test_ds: ClassDataset, data_dir: str | None
               ) -> tuple[ClassDataset, str | None]:
    """``test_ds`` without the characters a checkpoint trained on under another protocol
    (an ``ns28`` model has seen most of ``gmn28``'s test characters), and a note saying so."""
    from ppl_fewshot.inference.eval_data import training_class_overlap

    trained_on = (state.get("train_config") or {}).get("protocol")
    overlap = training_class_overlap(trained_on, protocol, test_ds, data_dir)
    if not overlap or not overlap["classes"]:
        return test_ds, None
    seen = set(overlap["names"])
    keep = [i for i, n in enumerate(test_ds.class_names) if n not in seen]
    note = (f"{len(keep)} of the {test_ds.num_classes} {protocol} test characters: the other "
            f"{overlap['classes']} are training classes of {overlap['train_protocol']}, the "
            "protocol this checkpoint was trained under")
    print(f"Using {note}.", file=sys.stderr)
    return test_ds.subset(keep), note


def cmd_quickstart(args: argparse.Namespace) -> int:
    import torch

    from ppl_fewshot import models
    from ppl_fewshot.data import episode_bank
    from ppl_fewshot.diagnostics import (
        plot_loss_curve,
        plot_nll_curves,
        plot_sample_grid,
        save_figure,
    )
    from ppl_fewshot.inference import TrainConfig, model_from_checkpoint, nll_table, train
    from ppl_fewshot.utils import atomic_write_text, resolve_device, seed_everything

    t0 = time.perf_counter()
    protocol, train_ds, val_ds, test_ds = _datasets(args.data_dir, args.seed)
    unseen_note = None
    ckpt = Path(args.checkpoint) if args.checkpoint else zoo_checkpoint()
    if args.checkpoint and not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
    pretrained = ckpt is not None and not args.train
    name = args.model or ("gmn-small" if "gmn-small" in models.available() else "vae-small")
    models.resolve(name)
    config = TrainConfig(
        model=name,
        protocol=protocol,
        steps=args.steps,
        batch_size=16,
        set_size=10,
        num_classes=1,
        lr=(1e-3,),
        val_classes=val_ds.num_classes,
        val_every=args.steps,
        val_batches=2,
        checkpoint_every=args.steps,
        log_every=10,
        seed=args.seed,
        device=args.device,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if pretrained:
            model, state = model_from_checkpoint(ckpt, device=resolve_device(args.device))
            name, device, t_train = state["model_name"], resolve_device(args.device), 0.0
            val_loss, steps = None, state["step"]
            test_ds, unseen_note = _unseen_by(state, protocol, test_ds, args.data_dir)
        else:
            summary = train(config, work / "run", data=(train_ds, val_ds))
            t_train = time.perf_counter() - t0
            model, _ = model_from_checkpoint(work / "run" / "checkpoint.pt", summary["device"])
            device, steps = summary["device"], args.steps
            val_loss = summary["final_val_loss_nats_per_item"]
            fig, _ = plot_loss_curve(work / "run" / "metrics.jsonl")
            save_figure(fig, work / "loss.png")
        seed_everything(args.seed)
        # five drawings of characters never seen in training -> new drawings
        shown = episode_bank(test_ds, 6, 5, 1, sampler="distinct", seed=args.seed)
        sample_kw = sample_options(model, args.components, shown.x.shape[1], args.temperature)
        with torch.no_grad():
            samples = model.sample(shown.x.to(device), 10, **sample_kw).cpu()
        title = f"{name} on unseen {protocol} characters: 5 drawings (left), 10 new ones (right)"
        fig, _ = plot_sample_grid(shown.x, samples, title=title)
        save_figure(fig, work / "samples.png")
        bank = episode_bank(test_ds, args.eval_episodes, 11, 1, sampler="distinct", seed=args.seed)
        table = nll_table(model, bank, (0, 1, 2, 3, 5, 10), num_particles=args.samples)
        fig, _ = plot_nll_curves({f"{name} (ppl_fewshot, {steps} steps)": table})
        save_figure(fig, work / "nll_by_shots.png")
        result = {
            "model": name,
            "checkpoint": str(ckpt) if pretrained else "trained now",
            "protocol": protocol,
            "train_steps": steps,
            "train_wall_time_s": round(t_train, 1),
            "samples": "p(x | 5 drawings)"
            + (
                ", z from the mixture prior's components on the context drawings"
                if sample_kw.get("components") == "context"
                else ""
            )
            + (f", temperature {args.temperature:g}" if "temperature" in sample_kw else ""),
            "final_val_loss_nats_per_item": val_loss,
            **({"test_characters": unseen_note} if unseen_note else {}),
            "nll_by_shots": table,
            "nll_protocol": f"{args.eval_episodes} test episodes of 11 distinct drawings of one "
            f"unseen character, K={args.samples} importance samples (a smoke "
            "estimate, not a benchmark number)",
            "total_wall_time_s": round(time.perf_counter() - t0, 1),
        }
        atomic_write_text(work / "summary.json", json.dumps(result, indent=2))
        if (work / "run").exists():
            shutil.rmtree(work / "run")  # scratch training run: the figures are what stays
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    print(json.dumps({k: result[k] for k in ("model", "protocol", "total_wall_time_s")}))
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
