"""How much signal a training objective's gradient carries: its signal-to-noise ratio.

A stochastic objective (the ELBO, the importance weighted bound, its doubly reparameterized
gradient) gives, for a fixed batch, a random gradient ``g`` per step. Its signal-to-noise
ratio per parameter element [1],

    SNR = |E[g]| / sd[g],

says how many steps the optimizer needs to see the direction: below 1, a single step's
gradient is mostly noise. Rainforth et al. [1] prove that for the importance weighted bound
with K draws the guide's gradient has SNR of order ``1 / sqrt(K)`` (its mean shrinks faster
than its noise) while the model's grows as ``sqrt(K)``; the doubly reparameterized gradient
(DReG, [2]) removes the score-function term that causes it, and its guide SNR grows with K
instead. :func:`objective_gradient_snr` measures it for any :class:`FewShotModel`, objective,
K and batch, by group of parameters (:func:`parameter_roles`: the guide's own, the model's
own, and those both use, like a GMN's shared features), so that the choice of objective and
K can be made from a measurement rather than a training run.

Estimated from ``N`` independent draws of the gradient, ``|mean|`` carries noise of about
``sd / sqrt(N)``, so a measured SNR is not reliable below about ``1 / sqrt(N)``: the result
reports that floor beside every number.

References:
    [1] Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh, "Tighter Variational Bounds are
        Not Necessarily Better", ICML 2018.
    [2] Tucker, Lawson, Gu & Maddison, "Doubly Reparameterized Gradient Estimators for Monte
        Carlo Objectives", ICLR 2019.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence

import pyro
import torch
from pyro import poutine
from torch import Tensor, nn
from tqdm.auto import trange

from ppl_fewshot.inference.objectives import ELBOLoss
from ppl_fewshot.models.annealing import latent_sites
from ppl_fewshot.models.base import FewShotModel, as_mask

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GroupSNR:
    """Gradient statistics of one group of parameters over ``N`` draws.

    Attributes:
        size: number of scalar elements in the group.
        median_snr: the median over elements of ``|mean| / sd`` (elements whose gradient is
            exactly 0 in every draw left out).
        pooled_snr: ``||mean|| / sqrt(sum of variances)``: the group's gradient as one vector,
            its length against its expected noise.
        mean_norm: ``||mean||``, the estimated expected gradient's length.
        noise_norm: ``sqrt(sum of variances)``, the length of one draw's noise.
        floor: ``1 / sqrt(N)``: SNRs near it are indistinguishable from noise.
    """

    size: int
    median_snr: float
    pooled_snr: float
    mean_norm: float
    noise_norm: float
    floor: float

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def gradient_snr(
    loss_fn: Callable[[], Tensor],
    groups: Mapping[str, Sequence[nn.Parameter]],
    num_draws: int = 50,
    seed: int | None = 0,
    progress: bool = False,
) -> dict[str, GroupSNR]:
    """SNR of the gradient of ``loss_fn()`` for each group of parameters, over ``num_draws``
    independent calls.

    Args:
        loss_fn: returns a scalar loss; each call draws anew (e.g. an ``ELBOLoss`` on a fixed
            batch).
        groups: name -> parameters; a parameter may appear in one group only.
        num_draws: independent gradients (at least 2).
        seed: seeds torch's RNG (which Pyro's samplers use) before the first draw (``None``:
            not seeded); the caller's random state is restored afterwards, on the CPU and on
            the parameters' GPU.
        progress: a tqdm bar over the draws.

    Returns:
        name -> :class:`GroupSNR`, from running first and second moments (float64).
    """
    if num_draws < 2:
        raise ValueError(f"num_draws must be >= 2, got {num_draws}")
    seen: set[int] = set()
    for name, params in groups.items():
        for p in params:
            if id(p) in seen:
                raise ValueError(f"a parameter appears in more than one group ({name!r})")
            seen.add(id(p))
    owners = [name for name, ps in groups.items() for _ in ps]
    flat = [p for ps in groups.values() for p in ps]
    s1 = [torch.zeros(p.shape, dtype=torch.float64) for p in flat]  # running sums of g, g^2
    s2 = [torch.zeros(p.shape, dtype=torch.float64) for p in flat]
    cuda = sorted({p.device for p in flat if p.device.type == "cuda"}, key=str)
    with torch.random.fork_rng(devices=cuda):
        if seed is not None:
            torch.manual_seed(seed)
        for _ in trange(num_draws, disable=not progress, desc="gradient draws"):
            grads = torch.autograd.grad(loss_fn(), flat, allow_unused=True)
            for i, g in enumerate(grads):
                if g is not None:
                    g = g.detach().to("cpu", torch.float64)
                    s1[i] += g
                    s2[i] += g * g
    out = {}
    for name, ps in groups.items():
        if not ps:
            continue
        idx = [i for i, owner in enumerate(owners) if owner == name]
        mean = torch.cat([s1[i].flatten() for i in idx]) / num_draws
        second = torch.cat([s2[i].flatten() for i in idx]) / num_draws
        var = (second - mean * mean).clamp(min=0) * num_draws / (num_draws - 1)
        live = (mean != 0) | (var > 0)
        sd = var.sqrt()
        snr = mean.abs()[live] / sd[live]
        noise = float(var.sum().sqrt())
        out[name] = GroupSNR(
            size=mean.numel(),
            median_snr=float(snr.median()) if snr.numel() else math.nan,
            pooled_snr=float(mean.norm()) / noise if noise > 0 else math.nan,
            mean_norm=float(mean.norm()),
            noise_norm=noise,
            floor=1.0 / math.sqrt(num_draws),
        )
    return out


def _touched(value: Tensor | float, params: Sequence[nn.Parameter]) -> set[int]:
    """Indices of the ``params`` that ``value``'s graph reaches."""
    if not (torch.is_tensor(value) and value.requires_grad):
        return set()
    grads = torch.autograd.grad(value, params, allow_unused=True, retain_graph=True)
    return {i for i, g in enumerate(grads) if g is not None}


def parameter_roles(
    model: FewShotModel, x: Tensor, mask: Tensor | None = None
) -> dict[str, list[nn.Parameter]]:
    """The model's trainable parameters by the part of the program that uses them on ``x``.

    ``"guide"``: used by the guide (its densities or its reparameterized draws) and not by the
    model's log-density at fixed latents; ``"model"``: the reverse; ``"shared"``: both (e.g.
    features ``model.prepare`` hands to both). Parameters neither uses on ``x`` are left out.
    The guide's one draw leaves the caller's random state as it was.
    """
    mask = as_mask(x, mask)
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = sorted({p.device for p in params if p.device.type == "cuda"}, key=str)
    with torch.random.fork_rng(devices=cuda), pyro.settings.context(module_local_params=True):
        ctx = model.prepare(x, mask)
        g = poutine.trace(model.guide).get_trace(x, mask, ctx)
        latent = latent_sites(g)
        q = sum(site["fn"].log_prob(site["value"]).sum() + site["value"].sum()
                for site in latent.values())
        for site in latent.values():
            site["value"] = site["value"].detach()
        m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x, mask, ctx)
        p = sum(site["fn"].log_prob(site["value"]).sum() for site in m.nodes.values()
                if site["type"] == "sample")
    in_guide, in_model = _touched(q, params), _touched(p, params)
    return {
        "guide": [params[i] for i in sorted(in_guide - in_model)],
        "model": [params[i] for i in sorted(in_model - in_guide)],
        "shared": [params[i] for i in sorted(in_guide & in_model)],
    }


def objective_gradient_snr(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor | None = None,
    objective: str = "elbo",
    num_particles: int = 1,
    num_draws: int = 50,
    seed: int | None = 0,
    progress: bool = False,
) -> dict[str, GroupSNR]:
    """SNR of the gradient of ``ELBOLoss(model, objective, num_particles)`` on the batch
    ``x[B, T, ...]`` (``mask[B, T]``), for the guide's, the model's and the shared parameters
    (:func:`parameter_roles`; empty groups are left out), with the model in the mode it is in
    (``model.train()`` for a training step's gradient). See the module docstring."""
    mask = as_mask(x, mask)
    loss = ELBOLoss(model, objective, num_particles)
    roles = parameter_roles(model, x, mask)
    logger.info("gradient SNR of %s, K %d: %s", objective, num_particles,
                {k: sum(p.numel() for p in v) for k, v in roles.items()})
    return gradient_snr(lambda: loss(x, mask), roles, num_draws, seed, progress)
