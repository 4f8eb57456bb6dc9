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

import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import Tensor

from ppl_fewshot.models.annealing import (
    AIS,
    annealed_log_weights,
    check_inner,
    guide_draws,
    nested_log_weights,
)
from ppl_fewshot.models.particles import (
    auto_chunk,
    check_positions,
    particles_in_chunks,
    prefix_lengths,
    prefix_pairs,
    query_sets,
)
from ppl_fewshot.models.urn import Urn, urn_conditionals


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

    #: registry name or import path ``module:Class``, set by :func:`ppl_fewshot.models.build`
    name: str = "base"
    #: True when the model has a per-set latent (c, alpha) in the "sets" plate
    has_set_latent: bool = False
    #: True when the guide only conditions item t on items < t (GMN): then the
    #: per-item importance weights estimate log p(x_t | x_<t) directly
    autoregressive: bool = False
    #: a Pólya urn over each set's items (:mod:`ppl_fewshot.models.urn`), or None: see
    #: :meth:`set_urn`
    urn: Urn | None = None

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

    def query_posteriors(self, query: Tensor, context: Tensor,
                         context_mask: Tensor | None = None, seed: int | None = None) -> dict:
        """The guide's ``q(latents of x | context)`` for each query ``x``, one distribution per
        latent site, each with batch shape ``[B, Q]``: ``q(z | x, X)`` for per-item sites,
        ``q(c | X u {x})`` for per-set ones
        (:func:`~ppl_fewshot.models.posteriors.query_posteriors`)."""
        from ppl_fewshot.models.posteriors import query_posteriors

        return query_posteriors(self, query, context, context_mask, seed)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model with ``models.build(name, **config)``."""
        return dict(self._config)

    def set_urn(self, concentration: float | None, atoms: int = 0) -> None:
        """Make each set a draw from a Pólya urn whose new atoms are this model's items
        (``concentration`` theta > 0, ``inf`` allowed; ``atoms`` 0 for a Dirichlet process or
        N), or remove the urn (``None``). With an urn the model scores a set's distinct items
        only and every item adds its urn term (:meth:`urn_split`): an exact repeat of an
        earlier item costs ``-log w_copy`` nats. Recorded in :meth:`config`, so checkpoints
        keep it (``models.build(name, urn_concentration=..., urn_atoms=...)`` does the same)."""
        if concentration is None:
            if atoms:
                raise ValueError("urn_atoms needs urn_concentration")
            self.urn = None
        else:
            self.urn = Urn(float(concentration), int(atoms))
        self._config.update(urn_concentration=concentration, urn_atoms=int(atoms))

    def urn_split(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(scored, terms)``, each ``[B, T]``: the mask of the items this model's own program
        scores (or reads, for a context) and each item's urn term
        (:meth:`~ppl_fewshot.models.urn.Urn.split`); without an urn, ``mask`` (all ``True`` when
        None) and zeros."""
        mask = as_mask(x, mask)
        if self.urn is None:
            return mask, x.new_zeros(mask.shape)
        return self.urn.split(x, mask)

    # -------------------------------------------------------------- estimators
    def prepare_queries(
        self, x: Tensor, mask: Tensor, positions: list[int]
    ) -> tuple[Tensor, Tensor, dict | None] | None:
        """Inputs that score only the items ``positions`` of each set of ``x``.

        Returns ``(x_q, mask_q, ctx)`` such that the per-item weights of
        ``log_weights(x_q, mask_q, K, per_item=True, ctx=ctx)`` estimate
        ``log p(x_t | x_<t)`` for ``t`` in ``positions`` (conditioning on all of ``x``),
        or ``None`` when the model cannot do that (then every item is scored and the
        asked ones kept). Default: models whose items are scored independently (no
        per-set latent, not autoregressive) simply select the items.
        """
        if self.has_set_latent or self.autoregressive:
            return None
        xq, mq = x[:, positions], mask[:, positions]
        return xq, mq, self.prepare(xq, mq)

    def prepare_singletons(
        self, x: Tensor, mask: Tensor, ctx: dict | None = None
    ) -> tuple[Tensor, Tensor, dict | None]:
        """Inputs that score every real item of ``x[B, T]`` as a set of its own.

        Returns ``(x_1, mask_1, ctx_1)`` whose items are the real items of ``x``, each
        with the terms it has alone (for an autoregressive model its 0-shot conditional
        ``log p(x_t)``; with a per-set latent, its single-item bound); padded items stay
        masked. ``ctx`` is ``self.prepare(x, mask)`` when the caller has it. Default: the
        real items as ``N`` sets of one, ``[N, 1, *event]``, prepared afresh. A model
        whose items are scored independently given ``ctx`` may override this to reuse the
        episode's features with every read of another item removed (GMN, CVAE): the same
        terms, without encoding the items again.
        """
        mask = as_mask(x, mask)
        ones = x[mask].unsqueeze(1)
        single = torch.ones(ones.shape[:2], dtype=torch.bool, device=x.device)
        return ones, single, self.prepare(ones, single)

    def log_weights(
        self,
        x: Tensor,
        mask: Tensor | None,
        num_particles: int,
        per_item: bool = False,
        ctx: dict | None = None,
        ais: AIS | None = None,
        inner: int = 1,
    ) -> Tensor:
        """Importance log-weights log p(X, latents) - log q(latents | X).

        Returns ``[K, B]`` (one weight per set) or, with ``per_item=True``, ``[K, B, T]``
        (only for models without a per-set latent). Particles are vectorized through
        an outer ``pyro.plate("particles", K, dim=-3)``. ``ctx`` defaults to
        ``self.prepare(x, mask)``. With ``ais`` the guide's draws are annealed toward the
        posterior first (:mod:`ppl_fewshot.models.annealing`): the same estimators, with
        weights that stay reliable when the guide is too narrow, at ``ais.steps *
        (ais.leapfrog + 1)`` forward-and-backward passes per particle. ``inner > 1``
        (models with a per-set latent) draws ``inner`` latents per item for each draw of
        the set latent and averages each item's ratio first: nested importance sampling,
        far less variance for sets of many items at ``inner`` times the cost
        (:func:`~ppl_fewshot.models.annealing.nested_log_weights`). These are the model's own
        weights of the items ``mask`` marks: an urn enters through :meth:`urn_split`.
        """
        if per_item and self.has_set_latent:
            raise ValueError("per-item weights need a model without a per-set latent")
        if inner != 1 and (ais is not None or per_item):
            raise ValueError("inner draws (nested importance sampling) combine with neither "
                             "AIS nor per-item weights")
        mask = as_mask(x, mask)
        if ctx is None:
            ctx = self.prepare(x, mask)
        if inner != 1:
            return nested_log_weights(self, x, mask, num_particles, inner, ctx)
        if ais is not None:
            return annealed_log_weights(self, x, mask, num_particles, ais, per_item, ctx)
        log_p, log_q, _ = guide_draws(self, x, mask, num_particles, per_item, ctx)
        return log_p - log_q

    def log_marginal(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        num_particles: int = 1000,
        chunk: int | None = None,
        ais: AIS | None = None,
        inner: int = 1,
    ) -> Tensor:
        """Importance-sampled ``log p(X)`` per set, ``[B]``, in nats (K = num_particles).

        Particles are drawn ``chunk`` at a time (default:
        :func:`~ppl_fewshot.models.particles.auto_chunk`, divided by ``inner``); ``ais`` anneals
        them and ``inner`` nests them (see :meth:`log_weights`).
        With an urn: the partition's log-probability plus the distinct items' ``log p``.
        """
        check_inner(self, inner)
        scored, terms = self.urn_split(x, mask)
        return self._log_marginal(x, scored, num_particles, chunk, ais, inner) + terms.sum(-1)

    def _log_marginal(self, x: Tensor, mask: Tensor, num_particles: int, chunk: int | None,
                      ais: AIS | None, inner: int) -> Tensor:
        """The model's own importance-sampled ``log p(X)`` of the items ``mask`` marks."""
        chunk = chunk or max(1, auto_chunk(x) // inner)
        with torch.no_grad():
            lw = particles_in_chunks(
                lambda k: self.log_weights(x, mask, k, ais=ais, inner=inner), num_particles, chunk
            )
        return torch.logsumexp(lw, 0) - math.log(num_particles)

    def conditional_log_likelihoods(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        num_particles: int = 1000,
        chunk: int | None = None,
        positions: list[int] | tuple[int, ...] | None = None,
        ais: AIS | None = None,
        inner: int = 1,
    ) -> Tensor:
        """``log p(x_t | x_<t)`` for every item, ``[B, T]`` (or ``[B, len(positions)]``), nats.

        Models without a per-set latent score each item with its own importance
        weights (exact conditionals for autoregressive models such as GMN; the
        marginal ``log p(x_t)`` for context-free models). Models with a per-set
        latent use ``log p(x_<=t) - log p(x_<t)``, both by importance sampling.
        Padded items score 0. ``positions`` scores only those items (still
        conditioned on everything before them), which is all an NLL table needs.
        ``ais`` anneals every importance sampler involved and ``inner`` nests those of
        models with a per-set latent (see :meth:`log_weights`). With an urn a repeat scores
        its ``log w_copy`` exactly and a new item ``log w_new`` plus the model's own
        conditional given the distinct earlier items (:func:`~ppl_fewshot.models.urn.
        urn_conditionals`).
        """
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        pos = list(range(T)) if positions is None else check_positions(positions, T)
        check_inner(self, inner)
        if not pos or B == 0:
            return x.new_zeros(B, len(pos))

        def own(scored: Tensor, p: list[int]) -> Tensor:
            with torch.no_grad():
                return self.own_conditionals(x, scored, p, num_particles, chunk, ais, inner)

        return own(mask, pos) if self.urn is None else urn_conditionals(own, x, mask, pos,
                                                                          self.urn)

    def own_conditionals(self, x: Tensor, mask: Tensor, pos: list[int], num_particles: int,
                         chunk: int | None = None, ais: AIS | None = None,
                         inner: int = 1) -> Tensor:
        """The model's own ``log p(x_t | x_<t)`` (no urn) of the items ``pos``, ``[B, len(pos)]``,
        conditioned on the items ``mask`` marks; models with exact conditionals override it."""
        if not self.has_set_latent:
            lw = self.conditional_log_weights(x, mask, pos, num_particles, chunk, ais)
            return torch.logsumexp(lw, 0) - math.log(num_particles)
        return self._prefix_differences(x, mask, pos, num_particles, chunk, ais, inner)

    def conditional_log_weights(
        self,
        x: Tensor,
        mask: Tensor,
        pos: list[int],
        num_particles: int,
        chunk: int | None = None,
        ais: AIS | None = None,
    ) -> Tensor:
        """Per-item importance log-weights of the items ``pos``, ``[K, B, len(pos)]``
        (models without a per-set latent): each estimates ``log p(x_t | x_<t)``.

        Uses :meth:`prepare_queries` to score only those items when the model can;
        otherwise every item is scored and the asked ones kept.
        """
        prepared = self.prepare_queries(x, mask, pos) if pos != list(range(x.shape[1])) else None
        xq, mq, ctx = prepared if prepared is not None else (x, mask, None)
        lw = particles_in_chunks(
            lambda n: self.log_weights(xq, mq, n, per_item=True, ctx=ctx, ais=ais),
            num_particles, chunk or auto_chunk(x, x.shape[0] * xq.shape[1]),
        )
        return lw if prepared is not None else lw[:, :, pos]

    def _prefix_differences(
        self,
        x: Tensor,
        mask: Tensor,
        pos: list[int],
        num_particles: int,
        chunk: int | None,
        ais: AIS | None = None,
        inner: int = 1,
    ) -> Tensor:
        """``log p(x_<=t) - log p(x_<t)`` for ``t`` in ``pos``: each needed prefix is
        estimated once, truncated to its length (no work on the items after it)."""
        B, T = x.shape[:2]
        before, upto = prefix_pairs(mask, pos)
        table = x.new_zeros(B, T + 1)  # column n: log p(first n items); column 0 = 0
        for n in prefix_lengths(before, upto):
            table[:, n] = self._log_marginal(x[:, :n], mask[:, :n], num_particles, chunk, ais,
                                             inner)
        diff = table.gather(1, upto) - table.gather(1, before)
        return diff.masked_fill(~mask[:, pos], 0.0)

    def log_predictive(
        self,
        query: Tensor,
        context: Tensor,
        num_particles: int = 1000,
        context_mask: Tensor | None = None,
        ais: AIS | None = None,
        inner: int = 1,
    ) -> Tensor:
        """Importance-sampled ``log p(x_q | context)`` for each query, ``[B, Q]``, in nats.

        ``query`` is ``[B, Q, *event]`` and ``context`` ``[B, Tc, *event]`` (Tc may be 0).
        Each query item is scored on its own against the same context. ``ais`` and
        ``inner`` as in :meth:`conditional_log_likelihoods`.
        """
        B, Q = query.shape[:2]
        Tc = context.shape[1]
        xs, ms = query_sets(query, context, as_mask(context, context_mask))
        # the query is item Tc of its set: log p(x_q | context) = log p(x_Tc | x_<Tc)
        ll = self.conditional_log_likelihoods(xs, ms, num_particles, positions=[Tc], ais=ais,
                                              inner=inner)
        return ll.reshape(B, Q)


def loc_scale(params: Tensor, min_scale: float = 1e-4) -> tuple[Tensor, Tensor]:
    """A diagonal Normal's loc and scale from a network output ``[..., 2 D]``.

    The first half is the loc; the scale is ``softplus(second half) + min_scale`` (the floor
    keeps ``1 / scale``, and so every KL term, bounded). Every model's Normal heads use it.
    """
    loc, raw = params.chunk(2, -1)
    return loc, F.softplus(raw) + min_scale


def check_temperature(temperature: float) -> None:
    """Refuse a sampling temperature that is not a positive finite number."""
    if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
