"""``ppl-fewshot evaluate``: score trained models on fixed, seeded banks of test episodes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ppl_fewshot.cli import int_list, nonneg_int, positive_int
from ppl_fewshot.cli_commands import sha256_file


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a trained model on a fixed bank of test episodes")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--task", default="nll", help="nll")
    p.add_argument("--protocol", default="gmn28")
    p.add_argument("--classes", type=positive_int, default=1, help="C_test")
    p.add_argument("--shots", type=int_list, default=(0, 1, 2, 3, 4, 5, 10, 19))
    p.add_argument("--set-size", type=positive_int, default=20)
    p.add_argument("--samples", type=positive_int, default=1000, help="importance samples K")
    p.add_argument("--episodes", type=positive_int, default=659)
    p.add_argument("--sampler", choices=("with-replacement", "distinct"), default="with-replacement")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_evaluate)



def test_bank(protocol: str, classes: int, set_size: int, episodes: int, sampler: str,
              seed: int, data_dir: str | None):
    """The fixed, seeded bank of test episodes, cached on disk so every model sees the same."""
    from ppl_fewshot.data import cache_dir, episode_bank, load_bank, load_split, save_bank

    path = (cache_dir() / "banks" /
            f"{protocol}-test-C{classes}-T{set_size}-E{episodes}-{sampler}-s{seed}.pt")
    if path.exists():
        return load_bank(path), path
    ds = load_split(protocol, "test", data_dir=data_dir)
    bank = episode_bank(ds, episodes, set_size, classes, sampler=sampler, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bank(bank, path)
    return bank, path


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ppl_fewshot.inference import (
        markdown_header,
        markdown_row,
        model_from_checkpoint,
        nll_table,
    )
    from ppl_fewshot.inference.checkpoint import atomic_write_text
    from ppl_fewshot.utils import resolve_device

    if args.task != "nll":
        raise ValueError(f"task {args.task!r} is not implemented yet; available: nll")
    device = resolve_device(args.device)
    model, state = model_from_checkpoint(args.checkpoint, device=device)
    shots = args.shots
    set_size = max(args.set_size, max(shots) + 1)
    bank, bank_path = test_bank(args.protocol, args.classes, set_size, args.episodes,
                                args.sampler, args.seed, args.data_dir)
    t0 = time.perf_counter()
    table = nll_table(model, bank, shots, num_particles=args.samples, progress=sys.stderr.isatty())
    label = f"{state['model_name']} (ppl_fewshot)"
    result = {
        "model": state["model_name"], "label": label, "task": "nll", "protocol": args.protocol,
        "c_test": args.classes, "episode_sampler": args.sampler, "set_size": set_size,
        "estimator": f"importance sampling, K={args.samples} samples from the guide",
        "checkpoint": str(args.checkpoint), "checkpoint_sha256": sha256_file(args.checkpoint),
        "bank": str(bank_path), "eval_wall_time_s": round(time.perf_counter() - t0, 2),
        "training_budget": {"steps": state["step"], **state["extra"]},
        "train_config": state["train_config"], **table,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "nll.json", json.dumps(result, indent=2))
    csv = "shots,nll,se\n" + "".join(f"{s},{v},{e}\n" for s, v, e in
                                      zip(table["shots"], table["nll"], table["se"]))
    atomic_write_text(out / "nll.csv", csv)
    md = (f"Protocol `{args.protocol}`, sampler `{args.sampler}`, {table['episodes']} episodes of "
          f"{set_size}, {result['estimator']}; mean (standard error), nats.\n\n"
          + markdown_header(shots) + "\n" + markdown_row(label, table, args.classes) + "\n")
    atomic_write_text(out / "nll.md", md)
    print(md)
    return 0


