"""``ppl-fewshot figures``: the seed talk's figures for one trained model.

For each ``--protocol`` (test characters never seen in training; ``mnist28`` for the
transfer to digits) and each number of shots, a grid whose rows show a conditioning set
on the left and new samples on the right; unconditional samples (0 shots) where the
model has a proper ``p(x)``; and, for models with attention (GMN), which context items
each query attends to. ``figures.json`` lists the files with the command and, for the
attention maps, a number: the attention mass on items of the query's own class against
the share those items have in the context (what uniform attention would give).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ppl_fewshot.cli import int_list, nonneg_int, positive_int
from ppl_fewshot.cli_commands import _data_dir, sample_options


def attention_summary(model, bank, context_size: int) -> dict[str, Any]:
    """Attention of item ``context_size`` of each episode over the ``context_size`` items before it.

    Returns the recognition weights of the last read ``[E, S]`` (pseudo-input removed),
    the same-class indicator ``[E, S]``, the mean attention mass on same-class items,
    the same mass as a fraction of the attention on real items (not the pseudo-input),
    the mean same-class share of the context (what uniform attention would give), and the
    mean mass of the last read on the pseudo-input for each of the model's reads
    (recognition, likelihood, prior: :meth:`~ppl_fewshot.models.gmn.GMN.attention_weights`).
    """
    x, labels = bank.x, bank.labels
    ctx, qry = x[:, :context_size], x[:, context_size : context_size + 1]
    maps = model.attention_weights(qry, ctx)  # each [E, 1, steps, P + S]
    items = {k: v[:, 0, -1, v.shape[-1] - context_size :] for k, v in maps.items()}  # [E, S]
    w = items["recognition"]
    same = labels[:, :context_size] == labels[:, context_size : context_size + 1]
    mass = (w * same).sum(-1)
    share = same.float().mean(-1)
    return {"weights": w, "same_class": same,
            "same_class_attention_mass": round(float(mass.mean()), 4),
            "same_class_fraction_of_item_attention":
                round(float((mass / w.sum(-1).clamp(min=1e-12)).mean()), 4),
            "same_class_share_uniform": round(float(share.mean()), 4),
            "pseudo_input_mass": round(float(1 - w.sum(-1).mean()), 4),
            "pseudo_input_mass_by_read": {k: round(float(1 - v.sum(-1).mean()), 4)
                                          for k, v in items.items()},
            "episodes": int(x.shape[0])}


def cmd_figures(args: argparse.Namespace) -> int:
    import torch

    from ppl_fewshot.data import get_protocol
    from ppl_fewshot.diagnostics import plot_attention, plot_sample_grid, save_figure
    from ppl_fewshot.inference import model_from_checkpoint
    from ppl_fewshot.inference.eval_data import test_bank
    from ppl_fewshot.models import label as model_label
    from ppl_fewshot.utils import seed_everything

    for protocol in args.protocols:  # unknown names fail before any work
        get_protocol(protocol)
    if not args.protocols or not args.shots:
        raise ValueError("give at least one protocol and one number of shots")
    model, state = model_from_checkpoint(args.checkpoint)
    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, Any] = {
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "checkpoint_step": state["step"], "model": state["model_name"], "files": [],
    }
    name = model_label(model)
    for protocol in args.protocols:
        need = max(max(args.shots), 1)
        bank, _ = test_bank(protocol, 1, need + 1, args.rows, "distinct", args.seed,
                            args.data_dir)
        for shots in args.shots:
            # p(x | context); a mixture-prior GMN also from its components on the context
            # (and at --temperature, if not 1)
            variants = [("all", 1.0, "")]
            if sample_options(model, "context", shots):
                variants.append(("context", 1.0, "_context_components"))
            if args.temperature != 1.0 and shots:
                variants += [(c, args.temperature, f"{x}_t{args.temperature:g}")
                             for c, _, x in variants]
            for components, temp, suffix in variants:
                seed_everything(args.seed)
                with torch.no_grad():
                    samples = model.sample(bank.x[:, :shots], args.num,
                                           **sample_options(model, components, shots, temp))
                what = "samples" + (", prior components on the context"
                                    if components == "context" else "")
                what += f", temperature {temp:g}" if temp != 1.0 else ""
                fig, _ = plot_sample_grid(bank.x[:, :shots], samples,
                                          title=f"{name} ({protocol} test characters): "
                                                f"{shots} shots -> {what}")
                path = out / f"samples_{protocol}_{shots}shot{suffix}.png"
                made["files"].append(str(save_figure(fig, path)))
    try:
        seed_everything(args.seed)
        with torch.no_grad():
            samples = model.sample(torch.zeros(args.rows, 0, *model.event_shape), args.num)
        fig, _ = plot_sample_grid(samples[:, :0], samples, title=f"{name}: unconditional samples")
        made["files"].append(str(save_figure(fig, out / "unconditional.png")))
    except ValueError as err:  # e.g. a GMN without pseudo-input has no p(x)
        made["unconditional"] = f"not drawn: {err}"
    if hasattr(model, "attention_weights"):
        S = args.attention_context
        for protocol in args.protocols:
            bank, _ = test_bank(protocol, 2, S + 1, max(args.attention_episodes, args.rows),
                                "with-replacement", args.seed, args.data_dir)
            summary = attention_summary(model, bank, S)
            r = args.rows
            fig, _ = plot_attention(bank.x[:r, S], bank.x[:r, :S], summary["weights"][:r],
                                    summary["same_class"][:r],
                                    title=f"{name} ({protocol}, C_test = 2): recognition "
                                          "attention of the query (left), last read; "
                                          "green = query's class")
            made["files"].append(str(save_figure(fig, out / f"attention_{protocol}.png")))
            made[f"attention_{protocol}"] = {
                k: v for k, v in summary.items() if k not in ("weights", "same_class")
            }
    (out / "figures.json").write_text(json.dumps(made, indent=2))
    print(json.dumps(made, indent=2))
    return 0


def add_figures(sub: argparse._SubParsersAction) -> None:
    """Register ``ppl-fewshot figures``."""
    p = sub.add_parser("figures", help="sample grids, unconditional samples, attention maps")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--protocols", type=lambda t: tuple(v for v in t.split(",") if v),
                   default=("gmn28", "mnist28"), help="comma-separated, e.g. gmn28,mnist28")
    p.add_argument("--shots", type=int_list, default=(1, 5), help="comma-separated")
    p.add_argument("--rows", type=positive_int, default=6)
    p.add_argument("--num", type=positive_int, default=10, help="samples per row")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="also draw the conditional grids at this prior temperature (GMN, NS)")
    p.add_argument("--attention-context", type=positive_int, default=8)
    p.add_argument("--attention-episodes", type=positive_int, default=200,
                   help="episodes averaged in the attention summary")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    _data_dir(p)
    p.set_defaults(func=cmd_figures)
