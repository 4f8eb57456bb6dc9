"""Importance weights of a model/guide pair: plain (guide as proposal), nested and annealed.

Plain importance sampling draws latents from the amortized guide and weighs them by
``log p(X, latents) - log q(latents | X)``. When the guide is narrower than the posterior
the weights are heavy-tailed (PSIS k-hat > 0.7, see :mod:`ppl_fewshot.diagnostics.psis`)
and the estimate of ``log p(X)`` sits well below its value at any affordable K (an NLL
above the truth). Annealed importance sampling [1] bridges from the guide to the posterior
through ``f_beta(z) = q(z | X)^(1 - beta) p(X, z)^beta``, ``0 = beta_0 < ... < beta_S = 1``::

    z ~ q(z | X);  log w = 0
    for k = 1..S:
        log w += (beta_k - beta_{k-1}) * (log p(X, z) - log q(z | X))
        z ~ HMC transition that leaves f_{beta_k} invariant
    log p(X) ~= logmeanexp over particles of log w      (unbiased in p, a bound in log p)

With ``S = 0`` this is plain importance sampling. Transitions are Hamiltonian Monte Carlo
[2] in the unconstrained space of every latent site (``biject_to`` of its support), with
an accept/reject per *unit* -- a set, or an item for the per-item weights of models without
a per-set latent, whose targets factorize over items -- and a step size per unit adapted
toward an acceptance rate of 0.65 across particles, as in the AIS evaluation of decoder
based models [3]. Latents of padded items are held fixed.

Nested importance sampling (:func:`nested_log_weights`) serves models with a per-set latent
``c`` and per-item latents ``z_t`` (the Neural Statistician). Plain importance sampling
draws one ``z_t`` per item and particle, so a set's weight multiplies ``T`` noisy per-item
ratios and its variance grows exponentially with ``T``. Drawing ``M`` item latents for
each of the ``K`` draws of ``c`` averages every item's ratio before the product::

    c_k ~ q(c | X);  z_tkm ~ q(z_t | x_t, c_k)          k = 1..K, m = 1..M
    log w_k = log p(c_k) - log q(c_k | X)
              + sum_t log (1/M) sum_m p(x_t, z_tkm | c_k) / q(z_tkm | x_t, c_k)
    log p(X) ~= logmeanexp_k log w_k

Given ``c_k`` the inner averages are independent unbiased estimates of ``p(x_t | c_k)``,
so ``w_k`` is unbiased for ``p(X)`` and the estimate is a stochastic lower bound of
``log p(X)`` like plain importance sampling, at ``K * M`` item evaluations [5].

References:
    [1] Neal, "Annealed importance sampling", Statistics and Computing, 2001.
    [2] Neal, "MCMC using Hamiltonian dynamics", Handbook of MCMC, 2011.
    [3] Wu, Burda, Salakhutdinov & Grosse, "On the quantitative analysis of decoder-based
        generative models", ICLR 2017.
    [4] Grosse, Maddison & Salakhutdinov, "Annealing between distributions by averaging
        moments", NeurIPS 2013 (the sigmoid schedule).
    [5] Rainforth, Cornish, Yang, Warrington & Wood, "On nesting Monte Carlo estimators",
        ICML 2018 (products of inner estimates inside an outer one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import sum_rightmost
from pyro.poutine.util import site_is_subsample
from torch import Tensor
from torch.distributions import biject_to

if TYPE_CHECKING:
    from ppl_fewshot.models.base import FewShotModel


@dataclass(frozen=True)
class AIS:
    """Settings of annealed importance sampling.

    Attributes:
        steps: intermediate distributions S (0 = plain importance sampling).
        leapfrog: leapfrog steps per HMC transition (each costs one forward and one
            backward pass of model and guide).
        step_size: initial HMC step size in unconstrained space.
        target_accept: acceptance rate the step size is adapted toward.
        sharpness: ``delta`` of the sigmoid schedule [4] (larger: more steps near 0 and 1).
    """

    steps: int = 100
    leapfrog: int = 2
    step_size: float = 0.1
    target_accept: float = 0.65
    sharpness: float = 4.0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.leapfrog < 1 or self.step_size <= 0:
            raise ValueError(f"AIS needs steps >= 0, leapfrog >= 1, step_size > 0: {self}")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept}")

    def schedule(self) -> list[float]:
        """``beta_0 = 0, ..., beta_S = 1``: a sigmoid schedule rescaled to the end points."""
        if self.steps == 0:
            return [0.0, 1.0]
        t = torch.linspace(-self.sharpness, self.sharpness, self.steps + 1, dtype=torch.float64)
        s = torch.sigmoid(t)
        return ((s - s[0]) / (s[-1] - s[0])).tolist()


def _weighed_sites(tr, observed: bool):
    """``(site, log_prob)`` of every sample site that enters an importance weight: all of a
    model trace (``observed=True``), the latent ones of a guide trace; no subsample sites."""
    for site in tr.nodes.values():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if observed or not site["is_observed"]:
            yield site, site["fn"].log_prob(site["value"])


def trace_log_densities(
    model_tr, guide_tr, num_particles: int, B: int, T: int, per_item: bool
) -> tuple[Tensor, Tensor]:
    """``(log p(X, latents), log q(latents))`` of a replayed model trace and its guide
    trace: ``[K, B]`` per set, or ``[K, B, T]`` per item with ``per_item=True`` (then a
    site outside the "items" plate is an error)."""
    out = []
    for tr, observed in ((model_tr, True), (guide_tr, False)):
        per_set = torch.zeros(num_particles, B)
        per_it = torch.zeros(num_particles, B, T)
        for site, lp in _weighed_sites(tr, observed):
            while lp.dim() < 3:
                lp = lp.unsqueeze(0)
            per_set, per_it = per_set.to(lp), per_it.to(lp)
            if _in_items(site):
                per_it = per_it + lp.expand(num_particles, B, T)
            elif per_item:
                raise ValueError(f"site {site['name']!r} is per set; no per-item weight")
            else:
                per_set = per_set + lp.expand(num_particles, B, 1)[..., 0]
        out.append(per_it if per_item else per_set + per_it.sum(-1))
    return out[0], out[1]


def guide_draws(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor,
    num_particles: int,
    per_item: bool = False,
    ctx: dict | None = None,
    replay=None,
) -> tuple[Tensor, Tensor, object]:
    """``(log p(X, latents), log q(latents), guide trace)`` for ``num_particles`` fresh draws
    of the guide (vectorized under ``pyro.plate("particles", K, dim=-3)``), or for the values
    held in the guide trace ``replay``. Shapes as :func:`trace_log_densities`."""
    m, g = draw_traces(model, x, mask, num_particles, ctx, replay)
    lp, lq = trace_log_densities(m, g, num_particles, x.shape[0], x.shape[1], per_item)
    return lp, lq, g


def draw_traces(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor,
    num_particles: int,
    ctx: dict | None = None,
    replay=None,
) -> tuple[poutine.Trace, poutine.Trace]:
    """``(model trace, guide trace)``: ``num_particles`` draws of the guide (or the values of
    the guide trace ``replay``) under ``pyro.plate("particles", K, dim=-3)``, and the model
    replayed on them."""
    guide = model.guide if replay is None else poutine.replay(model.guide, trace=replay)
    with pyro.plate("particles", num_particles, dim=-3):
        g = poutine.trace(guide).get_trace(x, mask, ctx)
        m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x, mask, ctx)
    return m, g


def latent_sites(tr) -> dict[str, dict]:
    """The unobserved sample sites of a trace (subsample sites left out)."""
    return {
        name: site
        for name, site in tr.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }


def _in_items(site: dict) -> bool:
    return "items" in {frame.name for frame in site["cond_indep_stack"]}


def check_inner(model: FewShotModel, inner: int) -> None:
    """Refuse ``inner`` draws per item that nested importance sampling cannot use: fewer than
    one, or more than one for a model without a per-set latent (its items have their own
    weights already)."""
    if inner < 1:
        raise ValueError(f"inner needs at least one draw per item, got {inner}")
    if inner != 1 and not getattr(model, "has_set_latent", False):
        raise ValueError("inner draws (nested importance sampling) need a model with a "
                         f"per-set latent; {type(model).__name__} has none")


def set_sites(tr) -> poutine.Trace:
    """The latent sites of a guide trace outside the ``"items"`` plate (the per-set latents),
    as a trace that :func:`nested_terms` replays (change a node's ``"value"`` to replay
    other draws)."""
    shared = poutine.Trace()
    for name, site in latent_sites(tr).items():
        if not _in_items(site):
            shared.add_node(name, **site)
    return shared


def nested_terms(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor,
    shared: poutine.Trace,
    num_particles: int,
    inner: int,
    ctx: dict | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The parts of a nested importance weight for the ``K = num_particles`` draws of the
    per-set latents held in ``shared`` (:func:`set_sites`): ``log p(set latents)`` and the
    guide's ``log q(set latents | X)``, each ``[K, B]``, and every item's
    ``log (1/M) sum_m p(x_t, z_tm | set latents) / q(z_tm | x_t, set latents)``, ``[K, B, T]``,
    over ``M = inner`` fresh draws of its latents under ``pyro.plate("inner", M, dim=-4)``
    (padded items: 0). :func:`nested_log_weights` adds them up; a caller that draws the set
    latents from its own proposal replaces the guide's term with that proposal's density.
    """
    K, (B, T) = num_particles, x.shape[:2]
    with pyro.plate("inner", inner, dim=-4), pyro.plate("particles", K, dim=-3):
        g = poutine.trace(poutine.replay(model.guide, trace=shared)).get_trace(x, mask, ctx)
        m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x, mask, ctx)
    log_p, log_q = x.new_zeros(K, B), x.new_zeros(K, B)  # of the set latents
    per_item = x.new_zeros(inner, K, B, T)  # log p(x_t, z_t | .) - log q(z_t | .), each draw
    for tr, is_model in ((m, True), (g, False)):
        for site, lp in _weighed_sites(tr, observed=is_model):
            while lp.dim() < 4:
                lp = lp.unsqueeze(0)
            if _in_items(site):
                per_item = per_item + (lp if is_model else -lp).expand(inner, K, B, T)
            elif is_model:  # a set site: the same value in every inner draw, one copy
                log_p = log_p + lp[0].expand(K, B, 1)[..., 0]
            else:
                log_q = log_q + lp[0].expand(K, B, 1)[..., 0]
    return log_p, log_q, torch.logsumexp(per_item, 0) - math.log(inner)


def nested_log_weights(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor,
    num_particles: int,
    inner: int,
    ctx: dict | None = None,
) -> Tensor:
    """Nested importance log-weights ``[K, B]``: ``inner`` draws of every item's latents for
    each of the ``K = num_particles`` draws of the per-set latents (module docstring).

    Per-set sites are the guide's latent sites outside the ``"items"`` plate; they are drawn
    once under ``pyro.plate("particles", K, dim=-3)`` and replayed while the guide redraws the
    item sites ``inner`` times (:func:`nested_terms`; the first pass's own item draws are
    dropped: one guide pass of K particles, 1/inner of the second, and no model pass).
    ``inner = 1`` is plain importance sampling (other draws). Padded items weigh 1 (log-weight 0).
    """
    check_inner(model, inner)
    with pyro.plate("particles", num_particles, dim=-3):
        outer = poutine.trace(model.guide).get_trace(x, mask, ctx)
    log_p, log_q, items = nested_terms(model, x, mask, set_sites(outer), num_particles, inner, ctx)
    return log_p - log_q + items.sum(-1)


def annealed_log_weights(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor,
    num_particles: int,
    ais: AIS,
    per_item: bool = False,
    ctx: dict | None = None,
) -> Tensor:
    """AIS log-weights ``[K, B]`` (or ``[K, B, T]`` per item) of ``model`` on ``x``.

    ``logsumexp(w, 0) - log K`` estimates ``log p(X)`` (per item: ``log p(x_t | x_<t)``
    for autoregressive models), like the plain weights of
    :meth:`~ppl_fewshot.models.base.FewShotModel.log_weights`, which calls this.
    """
    K, (B, T) = num_particles, x.shape[:2]
    with torch.no_grad():
        lp, lq, template = guide_draws(model, x, mask, K, per_item, ctx)
    if ais.steps == 0:
        return lp - lq
    betas, logw = ais.schedule(), torch.zeros_like(lp)
    sites = latent_sites(template)
    for name, site in sites.items():
        if site["fn"].support.is_discrete:
            raise ValueError(f"AIS needs continuous latents; site {name!r} is discrete")
    bij = {name: biject_to(site["fn"].support) for name, site in sites.items()}
    edims = {name: len(site["fn"].event_shape) for name, site in sites.items()}
    item_site = {name: _in_items(site) for name, site in sites.items()}
    u = {name: bij[name].inv(site["value"]).detach() for name, site in sites.items()}
    # padded items: no momentum, no force, so their latents stay where the guide put them
    moving = {
        name: mask.to(logw.dtype).reshape(B, T, *([1] * edims[name])) if item_site[name] else 1.0
        for name in sites
    }
    eps = torch.full((B, T) if per_item else (B,), ais.step_size, dtype=logw.dtype,
                     device=logw.device)

    def units(t: Tensor) -> Tensor:
        """A tensor of a site's batch shape ``[K, B, 1 or T]`` as ``[K, B(, T)]``."""
        while t.dim() < 3:
            t = t.unsqueeze(0)
        t = t.expand(K, B, t.shape[-1])
        return t if per_item else t.sum(-1)

    def site_shaped(name: str, v: Tensor) -> Tensor:
        """A per-unit tensor ``[.., B(, T)]`` broadcast against the values of a site."""
        v = v if per_item else v.unsqueeze(-1)
        return v.reshape(*v.shape, *([1] * edims[name]))

    def kinetic(mom: dict[str, Tensor]) -> Tensor:
        return sum(units(sum_rightmost(0.5 * p**2, edims[n])) for n, p in mom.items())

    def energies(beta: float, uu: dict[str, Tensor]):
        """``log f_beta`` in unconstrained space, log p, log q and the gradient of f."""
        with torch.enable_grad():
            leaves = {n: v.detach().requires_grad_(True) for n, v in uu.items()}
            ladj = 0.0
            for n, v in leaves.items():
                value = bij[n](v)
                template.nodes[n]["value"] = value
                jac = bij[n].log_abs_det_jacobian(v, value)
                ladj = ladj + units(sum_rightmost(jac, edims[n] - bij[n].codomain.event_dim))
            lp_, lq_, _ = guide_draws(model, x, mask, K, per_item, ctx, replay=template)
            f = (1 - beta) * lq_ + beta * lp_ + ladj
            grads = torch.autograd.grad(f.sum(), list(leaves.values()))
        grads = {n: torch.nan_to_num(g) * moving[n] for n, g in zip(leaves, grads, strict=True)}
        return f.detach(), lp_.detach(), lq_.detach(), grads

    for k in range(1, len(betas)):
        beta = betas[k]
        logw = logw + (beta - betas[k - 1]) * (lp - lq)
        f0, _, _, g = energies(beta, u)
        mom = {n: torch.randn_like(v) * moving[n] for n, v in u.items()}
        kin0, new = kinetic(mom), dict(u)
        for _ in range(ais.leapfrog):
            for n in new:
                e = site_shaped(n, eps)
                mom[n] = mom[n] + 0.5 * e * g[n]
                new[n] = new[n] + e * mom[n]
            f1, lp1, lq1, g = energies(beta, new)
            for n in new:
                mom[n] = mom[n] + 0.5 * site_shaped(n, eps) * g[n]
        log_accept = torch.nan_to_num((f1 - kinetic(mom)) - (f0 - kin0), nan=-math.inf)
        accept = torch.rand_like(log_accept).log() < log_accept
        u = {n: torch.where(site_shaped(n, accept), new[n], v) for n, v in u.items()}
        lp, lq = torch.where(accept, lp1, lp), torch.where(accept, lq1, lq)
        rate = accept.to(eps.dtype).mean(0)
        eps = eps * torch.where(rate > ais.target_accept, 1.02, 0.98)
    return logw

