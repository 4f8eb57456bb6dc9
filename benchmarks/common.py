"""Shared pieces of the speed benchmarks: hand-written losses, timing, statistics, machine info.

The hand-written losses compute, in plain PyTorch and through the model's own named
methods, exactly what ``Trace_ELBO`` computes at one particle::

    -ELBO(X) = -sum_sites [ log p(x | z) + log p(z) - log q(z | X) ]   at z ~ q (one draw)

divided by the number of real items, as :class:`ppl_fewshot.inference.objectives.ELBOLoss`
does. Random draws are taken in the same order as Pyro's guide takes them
(``empty(shape).normal_()``, the kernel of ``Normal.rsample``), so that under the same seed
the two losses agree to float rounding; ``step_overhead.py`` checks this.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ppl_fewshot.models.base import FewShotModel, as_mask

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------- densities
def normal_log_prob(value: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """Diagonal Normal log-density summed over the last dim (``Normal(...).to_event(1)``)."""
    return (-0.5 * ((value - loc) / scale) ** 2 - scale.log() - 0.5 * LOG_2PI).sum(-1)


def bernoulli_log_prob(logits: Tensor, x: Tensor, event_dims: int) -> Tensor:
    """Bernoulli(logits) log-mass of ``x`` summed over the last ``event_dims`` dims."""
    lp = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return lp.sum(tuple(range(-event_dims, 0)))


def rsample_normal(loc: Tensor, scale: Tensor) -> Tensor:
    """``loc + eps * scale``, ``eps`` drawn as ``torch.distributions.Normal.rsample`` draws it."""
    eps = torch.empty(loc.shape, dtype=loc.dtype, device=loc.device).normal_()
    return loc + eps * scale


def _loc_scale(params: Tensor) -> tuple[Tensor, Tensor]:
    loc, raw = params.chunk(2, -1)
    return loc, F.softplus(raw) + 1e-4


# ------------------------------------------------------------- hand-written losses
def gmn_loss(model: FewShotModel, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Negative ELBO per item of a GMN from ``prepare``/``posterior_params``/``prior_params``/
    ``likelihood_logits`` (guide draw first, as Trace_ELBO)."""
    mask = as_mask(x, mask)
    ctx = model.prepare(x, mask)
    allowed = ctx["allowed"]  # the causal read mask, built once by prepare
    qloc, qscale = model.posterior_params(ctx["h"], ctx, allowed)
    z = rsample_normal(qloc, qscale)
    ploc, pscale = model.prior_params(ctx, allowed)
    logits = model.likelihood_logits(z, ctx, allowed)
    elbo_item = (
        bernoulli_log_prob(logits, x, len(model.event_shape))
        + normal_log_prob(z, ploc, pscale)
        - normal_log_prob(z, qloc, qscale)
    )
    return -(elbo_item * mask).sum() / mask.sum().clamp(min=1)


def ns_loss(model: FewShotModel, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Negative ELBO per item of a Neural Statistician from its networks (``encoder``,
    ``posterior_c``, ``posterior_nets``, ``prior_nets``, ``decoder``); no sample dropout."""
    from ppl_fewshot.models.neural_statistician import _cat

    mask = as_mask(x, mask)
    h = model.encoder(x)
    q_c = model.posterior_c(h, mask).base_dist  # any pooling; [B, 1, C]
    cq_loc, cq_scale = q_c.loc, q_c.scale
    c = rsample_normal(cq_loc, cq_scale)
    per_set = normal_log_prob(c, torch.zeros_like(c), torch.ones_like(c)) - normal_log_prob(
        c, cq_loc, cq_scale
    )  # [B, 1]
    per_item = x.new_zeros(())
    zs: list[Tensor] = []
    z_above = None
    for layer in range(model.num_z_layers, 0, -1):
        q_in = _cat(h, c) if z_above is None else _cat(h, c, z_above)
        qloc, qscale = _loc_scale(model.posterior_nets[layer - 1](q_in))
        z = rsample_normal(qloc, qscale)
        p_in = c if z_above is None else _cat(c, z_above)
        ploc, pscale = _loc_scale(model.prior_nets[layer - 1](p_in))
        per_item = per_item + normal_log_prob(z, ploc, pscale) - normal_log_prob(z, qloc, qscale)
        zs.insert(0, z)
        z_above = z
    logits = model.decoder(_cat(*zs, c))
    per_item = per_item + bernoulli_log_prob(logits, x, len(model.event_shape))
    elbo = per_set.sum() + (per_item * mask).sum()
    return -elbo / mask.sum().clamp(min=1)


def vae_loss(model: FewShotModel, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Negative ELBO per item of the VAE from ``posterior_z``/``prior_z``/``likelihood``."""
    mask = as_mask(x, mask)
    q = model.posterior_z(x)
    z = q.rsample()
    elbo_item = (
        model.likelihood(z).log_prob(x)
        + model.prior_z(torch.Size(x.shape[:2])).log_prob(z)
        - q.log_prob(z)
    )
    return -(elbo_item * mask).sum() / mask.sum().clamp(min=1)


HANDWRITTEN: dict[str, Callable[[FewShotModel, Tensor, Tensor | None], Tensor]] = {
    "GenerativeMatchingNetwork": gmn_loss,
    "NeuralStatistician": ns_loss,
    "VAE": vae_loss,
}


def handwritten_loss(model: FewShotModel) -> Callable[[Tensor, Tensor | None], Tensor]:
    """The hand-written negative ELBO for ``model``'s class, as ``loss(x, mask)``."""
    fn = HANDWRITTEN.get(type(model).__name__)
    if fn is None:
        raise KeyError(f"no hand-written loss for {type(model).__name__}")
    return lambda x, mask=None: fn(model, x, mask)


# ------------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(
    loss_fn: Callable[[], Tensor], optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[float, float, float]:
    """One training step; returns (total seconds, forward seconds, loss value)."""
    sync(device)
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn()
    sync(device)
    t1 = time.perf_counter()
    loss.backward()
    optimizer.step()
    sync(device)
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, float(loss.detach())


def interleaved_steps(
    fns: dict[str, Callable[[], Tensor]], opts: dict[str, torch.optim.Optimizer],
    device: torch.device, warmup: int, steps: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``warmup + steps`` rounds of one :func:`timed_step` per variant, in a rotated order
    each round (A, B, C, then B, C, A, ...); returns the timed rounds' total and forward
    seconds per variant (warm-up rounds dropped)."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    fwd: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + steps):
        for n in names[r % len(names):] + names[: r % len(names)]:
            total, forward, _ = timed_step(fns[n], opts[n], device)
            if r >= warmup:
                times[n].append(total)
                fwd[n].append(forward)
    return times, fwd


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of ``a / b``: robust to load drift that hits both alike."""
    return statistics.median(x / y for x, y in zip(a, b))


def summarize(seconds: list[float]) -> dict[str, float]:
    """Median, quartiles and IQR in milliseconds."""
    ms = sorted(1e3 * s for s in seconds)
    if len(ms) == 1:
        return {"median_ms": ms[0], "q1_ms": ms[0], "q3_ms": ms[0], "iqr_ms": 0.0, "n": 1}
    q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    return {"median_ms": statistics.median(ms), "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1,
            "n": len(ms)}


def machine_info(device: torch.device) -> dict:
    """Where and under what load the numbers were taken."""
    import pyro

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        info["loadavg_1_5_15"] = list(os.getloadavg())
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
