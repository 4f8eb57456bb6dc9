"""The model contract shared by every few-shot generative model.

A model is a :class:`pyro.nn.PyroModule` with a generative program ``model(x, mask)``
and an amortized posterior ``guide(x, mask)`` over a batch of sets
``x[B, T, *event_shape]`` (ink = 1) with a boolean ``mask[B, T]``.

Plates and sites (the same names in model and guide)::

    with pyro.plate("sets", B, dim=-2):          # per-set latents: c, alpha
        c ~ p(c)                                 # value [.., B, 1, D]
        with pyro.plate("items", T, dim=-1):     # per-item latents and data
            z ~ p(z | c, X)                      # value [.., B, T, D]
            x ~ p(x | z, c, X)                   # observed, masked by ``mask``

Pyro plates cannot be empty: for ``T = 0`` (the empty set, legal everywhere) a model
samples its per-set sites and skips the "items" plate. Every per-item site must be masked
with ``dist.mask(mask)`` so that padded items contribute nothing. Networks broadcast over
extra leading dims, so importance sampling runs all particles at once under an outer
``pyro.plate("particles", K, dim=-3)``.

Features that model and guide share are computed once by :meth:`prepare` and
passed to both as ``ctx``.
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.nn import PyroModule
from pyro.poutine.util import site_is_subsample
from torch import Tensor


def as_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """The boolean ``[B, T]`` mask of ``x``, all ``True`` when ``mask`` is None."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match x[:2] {tuple(x.shape[:2])}"
        )
    return mask.to(device=x.device, dtype=torch.bool)


class FewShotModel(PyroModule):
    """Base class: the contract of DESIGN.md section 3.

    Subclasses implement :meth:`model`, :meth:`guide` and :meth:`sample`, set
    :attr:`has_set_latent`, and may override :meth:`prepare` (shared features),
    :meth:`context_posterior` and the estimators below with exact versions.
    """

    #: registry name, set by :func:`ppl_fewshot.models.register`
    name: str = "base"
    #: True when the model has a per-set latent (c, alpha) in the "sets" plate
    has_set_latent: bool = False
    #: True when the guide only conditions item t on items < t (GMN): then the
    #: per-item importance weights estimate log p(x_t | x_<t) directly
    autoregressive: bool = False

    def __init__(self, event_shape: tuple[int, ...] = (1, 28, 28)) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)
        self._config: dict[str, Any] = {}

    # ----------------------------------------------------------------- contract
    def prepare(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor] | None:
        """Features shared by model and guide, computed once per step (default: none)."""
        return None

    def model(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        raise NotImplementedError

    def guide(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        raise NotImplementedError

    def sample(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        """New items ``x' ~ p(x' | context)``: ``[B, num_samples, *event_shape]``.

        ``context`` is ``[B, Tc, *event_shape]``; ``Tc = 0`` samples from the prior.
        Returns probabilities (Bernoulli means) for image models.
        """
        raise NotImplementedError

    def context_posterior(self, context: Tensor, mask: Tensor | None = None):
        """q(c | context) as a torch Distribution with batch shape ``[B]``."""
        raise TypeError(f"model {self.name!r} has no per-set latent, so no context posterior")

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model with ``models.build(name, **config)``."""
        return dict(self._config)

    # -------------------------------------------------------------- estimators
    def log_weights(
        self, x: Tensor, mask: Tensor | None, num_particles: int, per_item: bool = False
    ) -> Tensor:
        """Importance log-weights log p(X, latents) - log q(latents | X).

        Returns ``[K, B]`` (one weight per set) or, with ``per_item=True``, ``[K, B, T]``
        (only for models without a per-set latent). Particles are vectorized through
        an outer ``pyro.plate("particles", K, dim=-3)``.
        """
        if per_item and self.has_set_latent:
            raise ValueError("per-item weights need a model without a per-set latent")
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        ctx = self.prepare(x, mask)
        with pyro.plate("particles", num_particles, dim=-3):
            guide_tr = poutine.trace(self.guide).get_trace(x, mask, ctx)
            model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(
                x, mask, ctx
            )
        per_set = x.new_zeros(num_particles, B)
        per_item_lw = x.new_zeros(num_particles, B, T)
        for tr, sign in ((model_tr, 1.0), (guide_tr, -1.0)):
            for site in tr.nodes.values():
                if site["type"] != "sample" or site_is_subsample(site):
                    continue
                if sign < 0 and site["is_observed"]:
                    continue
                lp = site["fn"].log_prob(site["value"])
                while lp.dim() < 3:
                    lp = lp.unsqueeze(0)
                plates = {frame.name for frame in site["cond_indep_stack"]}
                if "items" in plates:
                    per_item_lw = per_item_lw + sign * lp.expand(num_particles, B, T)
                elif per_item:
                    raise ValueError(f"site {site['name']!r} is per set; no per-item weight")
                else:
                    per_set = per_set + sign * lp.expand(num_particles, B, 1)[..., 0]
        if per_item:
            return per_item_lw
        return per_set + per_item_lw.sum(-1)

    def log_marginal(
        self, x: Tensor, mask: Tensor | None = None, num_particles: int = 1000, chunk: int = 100
    ) -> Tensor:
        """Importance-sampled ``log p(X)`` per set, ``[B]``, in nats (K = num_particles)."""
        chunks = []
        with torch.no_grad():
            done = 0
            while done < num_particles:
                k = min(chunk, num_particles - done)
                chunks.append(self.log_weights(x, mask, k))
                done += k
        lw = torch.cat(chunks, 0)
        return torch.logsumexp(lw, 0) - math.log(num_particles)

    def conditional_log_likelihoods(
        self, x: Tensor, mask: Tensor | None = None, num_particles: int = 1000, chunk: int = 100
    ) -> Tensor:
        """``log p(x_t | x_<t)`` for every item, ``[B, T]``, in nats.

        Models without a per-set latent score each item with its own importance
        weights (exact conditionals for autoregressive models such as GMN; the
        marginal ``log p(x_t)`` for context-free models). Models with a per-set
        latent use ``log p(x_<=t) - log p(x_<t)``, both by importance sampling.
        """
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        with torch.no_grad():
            if not self.has_set_latent:
                chunks, done = [], 0
                while done < num_particles:
                    k = min(chunk, num_particles - done)
                    chunks.append(self.log_weights(x, mask, k, per_item=True))
                    done += k
                lw = torch.cat(chunks, 0)
                return torch.logsumexp(lw, 0) - math.log(num_particles)
            if T == 0:
                return x.new_zeros(B, 0)
            # prefixes t = 1..T of every set, batched: [T*B, T] with prefix masks
            ar = torch.arange(T, device=x.device)
            pm = ar[None, :] <= ar[:, None]  # [T(prefix), T(item)]
            big_x = x.unsqueeze(0).expand(T, *x.shape).reshape(T * B, *x.shape[1:])
            big_m = (pm[:, None, :] & mask[None]).reshape(T * B, T)
            lm = self.log_marginal(big_x, big_m, num_particles, chunk).reshape(T, B).T  # [B, T]
            lm = torch.cat([lm.new_zeros(B, 1), lm], 1)  # column 0: the empty prefix
            # Each present item is differenced against the prefix ending at the previous
            # *present* item (1-based index, 0 when none) and padded items score exactly 0,
            # so the sum over present items telescopes to log p(X) whatever the padding.
            present = torch.where(mask, ar + 1, torch.zeros_like(ar))
            prev = torch.cat([present.new_zeros(B, 1), present.cummax(1).values[:, :-1]], 1)
            return (lm[:, 1:] - lm.gather(1, prev)).masked_fill(~mask, 0.0)

    def log_predictive(
        self,
        query: Tensor,
        context: Tensor,
        num_particles: int = 1000,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Importance-sampled ``log p(x_q | context)`` for each query, ``[B, Q]``, in nats.

        ``query`` is ``[B, Q, *event]`` and ``context`` ``[B, Tc, *event]`` (Tc may be 0).
        Each query item is scored on its own against the same context.
        """
        B, Q = query.shape[:2]
        Tc = context.shape[1]
        cmask = as_mask(context, context_mask)
        xs = torch.cat(
            [context.unsqueeze(1).expand(B, Q, *context.shape[1:]), query.unsqueeze(2)], 2
        ).reshape(B * Q, Tc + 1, *self.event_shape)
        ms = torch.cat([cmask.unsqueeze(1).expand(B, Q, Tc), cmask.new_ones(B, Q, 1)], 2).reshape(
            B * Q, Tc + 1
        )
        if self.has_set_latent:
            with torch.no_grad():
                joint = self.log_marginal(xs, ms, num_particles)
                ctx_only = ms.clone()
                ctx_only[:, -1] = False
                base = self.log_marginal(xs, ctx_only, num_particles)
            return (joint - base).reshape(B, Q)
        return self.conditional_log_likelihoods(xs, ms, num_particles)[:, -1].reshape(B, Q)
