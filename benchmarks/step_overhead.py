"""Per-step cost of Pyro's ``Trace_ELBO`` against a hand-written PyTorch loss of the same networks.

One training step is ``zero_grad -> loss -> backward -> Adam.step`` on a fixed random batch
``x[batch, set_size, 1, 28, 28]`` (Bernoulli(0.2) pixels; the data do not change the cost).
Every variant trains the *same* model parameters (its own Adam state). Variants run
interleaved, in a rotated order each round (A, B, C, then B, C, A, ...), warm-up excluded;
we report medians and IQRs per variant and the ratio of each to the hand-written loss, both
as a ratio of medians and as the median of per-round ratios (robust to load drift).

Variants:

- ``pyro``: :class:`ppl_fewshot.inference.objectives.ELBOLoss` as shipped (Trace_ELBO, Pyro
  and torch.distributions validation on, the library default).
- ``torch``: the hand-written negative ELBO of ``benchmarks/common.py``.
- ``pyro_novalid`` / ``torch_novalid``: the same with ``pyro.enable_validation(False)``.
- ``pyro_lean``: a *proposed* ELBOLoss (subclass defined here, no library edit): no
  ``LatentScale`` messenger when ``beta == 1`` and, for fully reparameterized guides, the loss
  as ``-(model_tr.log_prob_sum() - guide_tr.log_prob_sum())`` from one guide trace and one
  replayed model trace -- the same number as Trace_ELBO, without its per-site
  ``compute_log_prob``/``score_parts`` bookkeeping, shape checks and ``.item()`` calls.
- ``pyro_lean_novalid``: both.
- ``pyro_jit``: ``JitTrace_ELBO`` (``--jit``); its failure, if any, is recorded.
- ``pyro_compile`` / ``torch_compile``: nn submodules wrapped by ``torch.compile``
  (``--compile``); compile time is reported apart, the steady state in the table.

Before timing, the ``pyro`` and ``torch`` losses are evaluated under the same seed: they must
agree to float rounding (``loss_check`` in the JSON). A cProfile breakdown of the ``pyro``
forward pass (self time grouped by where it is spent) goes to ``profile``.

Usage::

    python benchmarks/step_overhead.py --model gmn-small --batch 20 --set-size 10 \\
        --steps 30 --threads 1 --device cpu --out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    handwritten_loss,
    interleaved_steps,
    machine_info,
    median_ratio,
    summarize,
    sync,
)

from ppl_fewshot.inference.objectives import ELBOLoss  # noqa: E402
from ppl_fewshot.models import build  # noqa: E402

MODELS = ("gmn-small", "gmn", "ns-small", "ns", "vae-small", "vae")


# ------------------------------------------------------------------ the variants
class LeanELBOLoss(ELBOLoss):
    """The proposed change to ``ELBOLoss.forward`` (objective ``"elbo"``, one particle).

    Same value and gradients as Trace_ELBO for a fully reparameterized guide (the library
    version would fall back to Trace_ELBO for other guides, deciding before any draw).
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.objective != "elbo" or self.num_particles != 1:
            return super().forward(x, mask)
        from ppl_fewshot.models.base import as_mask

        mask = as_mask(x, mask)
        n_items = mask.sum().clamp(min=1)
        with pyro.settings.context(module_local_params=True):
            ctx = self.model.prepare(x, mask)
            model = self._model if self.beta != 1.0 else self.model.model
            guide = self._guide if self.beta != 1.0 else self.model.guide
            guide_tr = poutine.trace(guide).get_trace(x, mask, ctx)
            if not all(
                s["fn"].has_rsample
                for s in guide_tr.nodes.values()
                if s["type"] == "sample" and not site_is_subsample(s)
            ):
                raise NotImplementedError("the lean ELBO needs a fully reparameterized guide")
            model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, mask, ctx)
            elbo = model_tr.log_prob_sum() - guide_tr.log_prob_sum()
        return -elbo / n_items


class JitELBOLoss(ELBOLoss):
    """ELBOLoss with ``JitTrace_ELBO`` (model and guide recompute ``prepare``: no dict args)."""

    def __init__(self, model) -> None:
        super().__init__(model)
        from pyro.infer import JitTrace_ELBO

        self._elbo = JitTrace_ELBO(max_plate_nesting=2, ignore_jit_warnings=True)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        from ppl_fewshot.models.base import as_mask

        mask = as_mask(x, mask)
        with pyro.settings.context(module_local_params=True):
            loss = self._elbo.differentiable_loss(self.model.model, self.model.guide, x, mask)
        return loss / mask.sum().clamp(min=1)


@contextlib.contextmanager
def validation(enabled: bool):
    """Pyro + torch.distributions validation on/off for the duration (restored after)."""
    from pyro.infer.util import is_validation_enabled

    old = is_validation_enabled()
    pyro.enable_validation(enabled)
    try:
        yield
    finally:
        pyro.enable_validation(old)


def compile_submodules(model: torch.nn.Module) -> list[str]:
    """Wrap the model's direct nn children with ``torch.compile`` (in place); their names."""
    names = []
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.ModuleList):
            continue
        child.compile()
        names.append(name)
    return names


# --------------------------------------------------------------------- profiling
_GROUPS = (
    ("pyro.poutine: trace/replay/plates/messenger stack",
     ("/pyro/poutine/", "/pyro/primitives.py")),
    ("pyro.infer: Trace_ELBO, compute_log_prob, checks", ("/pyro/infer/",)),
    ("pyro.util/ops: validation, nan checks", ("/pyro/util.py", "/pyro/ops/")),
    ("pyro.distributions (python)", ("/pyro/distributions/",)),
    ("pyro.nn (PyroModule __getattr__/__call__)", ("/pyro/nn/",)),
    ("torch.distributions (python, arg validation)", ("/torch/distributions/",)),
    ("torch.nn (python)", ("/torch/nn/",)),
    ("ppl_fewshot (python)", ("/ppl_fewshot/",)),
)
_KEY_FUNCS = (
    ("get_importance_trace", "/pyro/infer/enum.py"),
    ("compute_log_prob", "/pyro/poutine/trace_struct.py"),
    ("compute_score_parts", "/pyro/poutine/trace_struct.py"),
    ("check_model_guide_match", "/pyro/util.py"),
    ("check_site_shape", "/pyro/util.py"),
    ("warn_if_nan", "/pyro/util.py"),
    ("apply_stack", "/pyro/poutine/runtime.py"),
    ("sample", "/pyro/primitives.py"),
    ("__init__", "/torch/distributions/distribution.py"),
    ("_differentiable_loss_particle", "/pyro/infer/trace_elbo.py"),
    ("__getattr__", "/pyro/nn/module.py"),
)


def profile_forward(loss_fn: Callable[[], Tensor], steps: int) -> dict:
    """cProfile of ``steps`` forward passes: self time by group, key cumulative times (ms/step)."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        loss_fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in stats.values())
    groups: dict[str, float] = {name: 0.0 for name, _ in _GROUPS}
    groups["torch C kernels and builtins"] = 0.0
    groups["other python"] = 0.0
    for (fname, _, _), (_, _, tt, _, _) in stats.items():
        for name, pats in _GROUPS:
            if any(p in fname for p in pats):
                groups[name] += tt
                break
        else:
            key = "torch C kernels and builtins" if fname == "~" else "other python"
            groups[key] += tt
    key_cum: dict[str, float] = {}
    for func_name, file_pat in _KEY_FUNCS:
        ct = sum(v[3] for (f, _, fn), v in stats.items() if fn == func_name and file_pat in f)
        key_cum[f"{file_pat.strip('/')}:{func_name}"] = 1e3 * ct / steps
    top = sorted(
        ((v[2], f"{Path(f).name}:{ln}({fn})") for (f, ln, fn), v in stats.items() if "pyro" in f),
        reverse=True,
    )[:12]
    return {
        "profiled_steps": steps,
        "total_ms_per_forward_profiled": 1e3 * total / steps,
        "self_ms_per_forward_by_group": {k: 1e3 * v / steps for k, v in groups.items()},
        "cumulative_ms_per_forward": key_cum,
        "top_pyro_self_ms_per_forward": {name: 1e3 * t / steps for t, name in top},
        "note": "cProfile inflates Python-heavy code; use the timed variants for the real cost",
    }


# ------------------------------------------------------------ forward ladder
def forward_ladder(
    model, x: Tensor, mask: Tensor, torch_loss, rounds: int, device: torch.device
) -> dict:
    """Interleaved forward-only times of a ladder from the hand-written loss to ``ELBOLoss``.

    ``F0`` hand-written loss; ``F1`` model and guide run as plain Pyro programs (no handler
    but their plates: distribution objects, masks, ``pyro.sample``); ``F2`` guide traced and
    model replayed against it (the trace/replay machinery); ``F3`` plus
    ``log_prob_sum`` of both traces (= ``pyro_lean``); ``F4`` ``ELBOLoss`` (Trace_ELBO with its
    bookkeeping and validation). Successive differences attribute the overhead in real time.
    """
    full = ELBOLoss(model)

    def f1() -> None:
        ctx = model.prepare(x, mask)
        model.guide(x, mask, ctx)
        model.model(x, mask, ctx)

    def f2(with_log_prob: bool = False):
        ctx = model.prepare(x, mask)
        g = poutine.trace(model.guide).get_trace(x, mask, ctx)
        m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x, mask, ctx)
        return m.log_prob_sum() - g.log_prob_sum() if with_log_prob else None

    ladder = {
        "F0_torch": lambda: torch_loss(x, mask),
        "F1_pyro_programs_untraced": f1,
        "F2_trace_and_replay": f2,
        "F3_plus_log_prob_sum": lambda: f2(True),
        "F4_ELBOLoss_Trace_ELBO": lambda: full(x, mask),
    }
    times: dict[str, list[float]] = {k: [] for k in ladder}
    names = list(ladder)
    with pyro.settings.context(module_local_params=True):
        for r in range(rounds + 2):
            for k in names[r % len(names):] + names[: r % len(names)]:
                sync(device)
                t0 = time.perf_counter()
                ladder[k]()
                sync(device)
                if r >= 2:
                    times[k].append(time.perf_counter() - t0)
    med = {k: summarize(v)["median_ms"] for k, v in times.items()}
    steps = {f"{b} - {a}": med[b] - med[a] for a, b in zip(names, names[1:])}
    return {"median_ms": med, "differences_ms": steps, "rounds": rounds,
            "note": "forward only, with autograd recording; backward excluded"}


# -------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="gmn-small")
    ap.add_argument("--batch", type=int, default=20, help="sets per step")
    ap.add_argument("--set-size", type=int, default=10, help="items per set")
    ap.add_argument("--steps", type=int, default=30, help="timed rounds (each runs every variant)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default="pyro,torch,pyro_novalid,torch_novalid,pyro_lean,"
                    "pyro_lean_novalid", help="comma-separated subset of the variants")
    ap.add_argument("--jit", action="store_true", help="also try JitTrace_ELBO")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd networks")
    ap.add_argument("--profile-steps", type=int, default=5, help="0: no cProfile breakdown")
    ap.add_argument("--ladder-rounds", type=int, default=20,
                    help="rounds of the forward-only ladder F0..F4 (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build(args.model).to(device).train()
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, args.set_size, *model.event_shape, generator=g).lt(0.2).float()
    x = x.to(device)
    mask = torch.ones(args.batch, args.set_size, dtype=torch.bool, device=device)

    pyro_loss, lean_loss = ELBOLoss(model), LeanELBOLoss(model)
    torch_loss = handwritten_loss(model)
    fns: dict[str, Callable[[], Tensor]] = {}
    for name in args.variants.split(","):
        base, _, suffix = name.partition("_novalid")
        fn = {"pyro": pyro_loss, "torch": torch_loss, "pyro_lean": lean_loss}[base]
        if name.endswith("_novalid"):
            fns[name] = (lambda f: lambda: _novalid(f, x, mask))(fn)
        else:
            fns[name] = (lambda f: lambda: f(x, mask))(fn)

    # same draw, same number: Trace_ELBO against the hand-written loss (and the lean one)
    with torch.no_grad():
        vals = {}
        for name, fn in (("pyro", pyro_loss), ("torch", torch_loss), ("pyro_lean", lean_loss)):
            torch.manual_seed(args.seed + 1)
            vals[name] = float(fn(x, mask))
    grads = {}
    for name, fn in (("pyro", pyro_loss), ("torch", torch_loss)):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(args.seed + 1)
        fn(x, mask).backward()
        grads[name] = [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                       for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    grad_diff = max(float((a - b).abs().max()) for a, b in zip(grads["pyro"], grads["torch"]))
    grad_scale = max(float(a.abs().max()) for a in grads["pyro"])
    loss_check = {
        "max_abs_grad_diff_pyro_torch": grad_diff,
        "max_abs_grad": grad_scale,
        "pyro": vals["pyro"], "torch": vals["torch"], "pyro_lean": vals["pyro_lean"],
        "abs_diff_pyro_torch": abs(vals["pyro"] - vals["torch"]),
        "rel_diff_pyro_torch": abs(vals["pyro"] - vals["torch"]) / max(abs(vals["pyro"]), 1e-12),
        "abs_diff_pyro_lean": abs(vals["pyro"] - vals["pyro_lean"]),
        "units": "negative ELBO, nats per item, one sample under the same seed",
    }
    errors: dict[str, str] = {}
    extra: dict[str, dict] = {}
    if args.jit:
        jit_loss = JitELBOLoss(model)
        try:
            t0 = time.perf_counter()
            jit_loss(x, mask).backward()
            extra["pyro_jit"] = {"first_call_s": time.perf_counter() - t0}
            fns["pyro_jit"] = lambda: jit_loss(x, mask)
        except Exception as exc:  # noqa: BLE001 - a benchmark records any failure
            errors["pyro_jit"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    if args.compile:
        try:
            import copy

            cmodel = copy.deepcopy(model)
            names = compile_submodules(cmodel)
            c_pyro, c_torch = ELBOLoss(cmodel), handwritten_loss(cmodel)
            t0 = time.perf_counter()
            for f in (c_pyro, c_torch):
                f(x, mask).backward()
                f(x, mask).backward()
            extra["compile"] = {"compiled_submodules": names, "compile_s": time.perf_counter() - t0,
                                "note": "a deep copy of the model, same initial parameters"}
            fns["pyro_compile"] = lambda: c_pyro(x, mask)
            fns["torch_compile"] = lambda: c_torch(x, mask)
        except Exception as exc:  # noqa: BLE001
            errors["compile"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"

    params = {n: [p for p in (cmodel if "compile" in n else model).parameters()] for n in fns}
    opts = {n: torch.optim.Adam(params[n], lr=1e-4) for n in fns}
    names = list(fns)
    times, fwd = interleaved_steps(fns, opts, device, args.warmup, args.steps)
    ref = "torch" if "torch" in times else names[0]
    variants = {}
    for n in names:
        s = summarize(times[n])
        s["forward_median_ms"] = summarize(fwd[n])["median_ms"]
        s["ratio_to_torch_of_medians"] = s["median_ms"] / summarize(times[ref])["median_ms"]
        s["ratio_to_torch_median_per_round"] = median_ratio(times[n], times[ref])
        variants[n] = s
    result = {
        "benchmark": "step_overhead",
        "command": " ".join(["benchmarks/step_overhead.py"]
                            + (argv if argv is not None else sys.argv[1:])),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine_info(device),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "loss_check": loss_check,
        "variants": variants,
        "reference": ref,
        "errors": errors,
        "extra": extra,
    }
    if "pyro" in variants and "torch" in variants:
        result["ratio_pyro_over_torch"] = variants["pyro"]["ratio_to_torch_median_per_round"]
    if args.ladder_rounds > 0:
        result["forward_ladder"] = forward_ladder(model, x, mask, torch_loss, args.ladder_rounds,
                                                  device)
    if args.profile_steps > 0:
        result["profile"] = {
            "pyro": profile_forward(lambda: pyro_loss(x, mask), args.profile_steps)
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


def _novalid(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, mask: Tensor) -> Tensor:
    with validation(False):
        return fn(x, mask)


if __name__ == "__main__":
    res = main()
    print(json.dumps({n: round(v["median_ms"], 2) for n, v in res["variants"].items()}
                     | {"ratio_pyro_over_torch": res.get("ratio_pyro_over_torch"),
                        "loss_abs_diff": res["loss_check"]["abs_diff_pyro_torch"]}))
