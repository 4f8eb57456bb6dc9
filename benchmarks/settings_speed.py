"""Per-step training cost of one model under several settings, e.g. ``arch=conv`` against
``arch=resnet`` (docs/findings.md section 27), or of one objective under several options.

A variant's settings go to the model, except ``loss.NAME=VALUE`` (an :class:`ELBOLoss` option,
e.g. ``loss.singleton_weight=1``) and ``singletons=sets`` (the singleton term from sets of one
prepared afresh, the default of ``FewShotModel.prepare_singletons``, instead of the model's own
``prepare_singletons``: the layout before the model reused the episode's features).

One step is ``zero_grad -> ELBOLoss -> backward -> Adam.step`` on a fixed batch
``x[batch, set_size, 1, 28, 28]`` of Bernoulli(0.08) pixels (Omniglot's ink fraction; the
data do not change the cost). The variants run interleaved, in a rotated order each round,
warm-up rounds excluded; the JSON holds per variant the median, quartiles and parameter count,
and its cost relative to the first variant as the **median of per-round ratios** (robust to
the load drift of a shared machine: the number to quote).

Usage::

    python benchmarks/settings_speed.py --model gmn-small --base prior=mixture \\
        --variant arch=conv --variant arch=resnet --variant arch=resnet,z_dim=50 \\
        --batch 10 --set-size 20 --steps 30 --threads 1 --out settings_speed.json
    python benchmarks/settings_speed.py --model gmn \
        --base prior=mixture,arch=resnet,channels=16,hidden=288 \
        --variant loss.singleton_weight=0 --variant loss.singleton_weight=1 \
        --variant loss.singleton_weight=1,singletons=sets --out singletons.json
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_steps, machine_info, median_ratio, summarize  # noqa: E402

from ppl_fewshot.cli import key_value  # noqa: E402
from ppl_fewshot.inference.objectives import ELBOLoss  # noqa: E402
from ppl_fewshot.models import build  # noqa: E402
from ppl_fewshot.models.base import FewShotModel  # noqa: E402


def settings(text: str) -> dict[str, Any]:
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (values parsed as ``--set`` parses them)."""
    return dict(key_value(kv) for kv in text.split(",") if kv) if text else {}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gmn-small")
    p.add_argument("--base", default="", help="settings shared by every variant, k=v,k=v")
    p.add_argument("--variant", action="append", required=True,
                   help="one variant's settings (repeat; the first is the reference)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--set-size", type=int, default=20)
    p.add_argument("--steps", type=int, default=30, help="timed rounds")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="settings_speed.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(args.batch, args.set_size, 1, 28, 28, generator=g) < 0.08).float()

    fns, opts, params = {}, {}, {}
    for text in args.variant:
        torch.manual_seed(args.seed)
        kw = {**settings(args.base), **settings(text)}
        loss_kw = {k[5:]: kw.pop(k) for k in list(kw) if k.startswith("loss.")}
        layout = kw.pop("singletons", "model")
        if layout not in ("model", "sets"):
            raise ValueError(f"singletons must be 'model' or 'sets', got {layout!r}")
        model = build(args.model, **kw)
        if layout == "sets":
            model.prepare_singletons = types.MethodType(FewShotModel.prepare_singletons, model)
        loss_fn = ELBOLoss(model, **loss_kw)
        fns[text] = lambda f=loss_fn: f(x)
        opts[text] = torch.optim.Adam(loss_fn.parameters(), lr=1e-4)
        params[text] = sum(q.numel() for q in model.parameters())
    pyro.set_rng_seed(args.seed)
    times, _ = interleaved_steps(fns, opts, device, args.warmup, args.steps)
    ref = times[args.variant[0]]
    result: dict[str, Any] = {
        "benchmark": "settings_speed",
        "model": args.model,
        "base": settings(args.base),
        "batch": args.batch,
        "set_size": args.set_size,
        "steps": args.steps,
        "reference": args.variant[0],
        "variants": {
            name: {**summarize(t), "parameters": params[name],
                   "ratio_to_reference": median_ratio(t, ref)}
            for name, t in times.items()
        },
        "machine": machine_info(device),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: (v["median_ms"], v["ratio_to_reference"])
                      for k, v in result["variants"].items()}))
    return result


if __name__ == "__main__":
    main()
