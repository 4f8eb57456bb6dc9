"""Training objectives as ``nn.Module`` losses over Pyro's ELBOs.

``ELBOLoss(model)(x, mask)`` returns the negative ELBO in nats per real item:

    ELBO(X) = E_q[ log p(X | latents) ] + beta * E_q[ log p(latents) - log q(latents | X) ]

with ``beta = 1`` the evidence lower bound, ``beta < 1`` during KL annealing (the scale is
applied by :class:`LatentScale` to every latent site of model and guide, so the data term
is untouched). ``objective="iwae"`` is the importance weighted bound ``E[log (1/K) sum_k w_k]`` [2]
(what ``RenyiELBO(alpha=0)`` computes), built on the model's vectorized
``log_weights`` so that it is differentiable; KL annealing does not apply to it. For a
model without a per-set latent (VAE; GMN and CVAE, whose terms are the conditionals
log p(x_t | x_<t)) it is the sum of every item's own bound, sum_t E[log (1/K) sum_k w_tk],
which tightens with K whatever the set's size; with a per-set latent (Neural Statistician)
it is the bound of each set's joint weight. ``objective="iwae-dreg"`` has the same value
and the doubly reparameterized gradient estimator [4] (:func:`dreg_bounds`): IWAE's plain
gradient for the guide gets noisier relative to its mean as K grows [5]; DReG's does not, and
is exactly zero for a guide equal to the posterior.

``position_weights`` reweights the terms of an autoregressive model's objective
sum_t log p(x_t | x_<t): item t's ELBO term (its reconstruction and its KL) is multiplied by
``w_t = position_weights[min(t, len - 1)]``, so ``(20, 1)`` gives the 0-shot term of a 20-item
episode the weight of 20 others instead of 1/20 of the total. Any positive weights leave a
sum of per-term bounds, each a bound on its own conditional, so the model is the same; only
how training trades the terms against each other changes.

``singleton_weight = lam`` adds ``lam`` times the bound of every real item scored as a set
of its own: for an autoregressive model its 0-shot term log p(x_t), for a model with a
per-set latent the single-item ELBO. An episode objective trains the 0-shot conditional on
one item per set (10 a step for batches of 10 episodes); this term trains it on every item
of the batch, at the cost of one more pass over the items; a model that can score them
from the episode's own features (``model.prepare_singletons``: GMN, CVAE) does not encode
them again.

Features that model and guide share are computed once per step by ``model.prepare`` and
handed to both.

References:
    [1] Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    [2] Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
    [3] Bowman et al., "Generating Sentences from a Continuous Space", CoNLL 2016 (KL annealing).
    [4] Tucker, Lawson, Gu & Maddison, "Doubly Reparameterized Gradient Estimators for Monte
        Carlo Objectives", ICLR 2019.
    [5] Rainforth et al., "Tighter Variational Bounds are Not Necessarily Better", ICML 2018.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import pyro
import torch
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import Tensor, nn

from ppl_fewshot.models.annealing import draw_traces, latent_sites, trace_log_densities
from ppl_fewshot.models.base import FewShotModel, as_mask
from ppl_fewshot.models.posteriors import index_batch

OBJECTIVES = ("elbo", "iwae", "iwae-dreg")


class LatentScale(Messenger):
    """Multiply the log-density of every latent (unobserved) sample site by ``beta``.

    Used around both model and guide, it scales ``log p(z) - log q(z)`` (the KL part of the
    ELBO) and leaves ``log p(x | z)`` alone: the usual KL-annealing schedule.
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = float(beta)

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and not msg["is_observed"] and not site_is_subsample(msg):
            msg["scale"] = self.beta * msg["scale"]


class ItemWeights(Messenger):
    """Multiply the log-density of every sample site in the ``items`` plate by ``weights[t]``.

    ``weights[T]`` (one per item of the sets, the plate's size). Used around both model and
    guide, it turns the ELBO sum_t ELBO_t into sum_t w_t ELBO_t; sites outside the plate
    (a per-set latent) are left alone.
    """

    def __init__(self, weights: Tensor) -> None:
        super().__init__()
        self.weights = weights

    def _process_message(self, msg: dict) -> None:
        if msg["type"] != "sample" or site_is_subsample(msg):
            return
        for frame in msg["cond_indep_stack"]:
            if frame.name == "items":
                w = self.weights.reshape((-1,) + (1,) * (-1 - frame.dim))
                msg["scale"] = w * msg["scale"]


def item_weights(position_weights: Sequence[float], num_items: int) -> Tensor:
    """``w[T]`` with ``w_t = position_weights[min(t, len - 1)]`` (all ones when empty)."""
    pw = torch.tensor(tuple(position_weights) or (1.0,), dtype=torch.float32)
    return pw[torch.arange(num_items).clamp(max=len(pw) - 1)]


def _stop_parameters(fn: torch.distributions.Distribution) -> torch.distributions.Distribution:
    """``fn`` with its parameters detached and its masks kept: evaluated at a reparameterized
    draw, the log-density keeps the draw's path to the guide's parameters and drops their
    explicit (score function) dependence."""
    masks = []
    while isinstance(fn, MaskedDistribution):
        masks.append(fn._mask)
        fn = fn.base_dist
    out = index_batch(fn, Tensor.detach)
    for m in reversed(masks):
        out = out.mask(m)
    return out


def dreg_bounds(
    model: FewShotModel, x: Tensor, mask: Tensor, num_particles: int, ctx: dict | None
) -> Tensor:
    """Every item's IWAE bound ``[B, T]``, with the doubly reparameterized gradient [4].

    The value is ``log (1/K) sum_k w_k`` per item; the gradient is, for the model's parameters,
    IWAE's ``sum_k w~_k d log w_k`` (``w~`` the normalized weights) and, for the guide's (shared
    ones included), ``sum_k w~_k^2 (d log w_k / d z_k)(d z_k / d phi)``: the same expectation
    without the score-function term, whose noise grows with K and buries the guide's gradient
    [5]. Built from one guide trace: ``log q`` is evaluated with its parameters detached (the
    draw keeps its path), and a gradient hook multiplies what reaches each draw ``z_k`` by
    ``w~_k``. Needs a model without a per-set latent whose guide has one reparameterized
    latent site per item (the GMN, CVAE and VAE): with more, one site's density would depend
    on another's draw, and detaching it would drop part of that draw's path.
    """
    m, g = draw_traces(model, x, mask, num_particles, ctx)
    latent = list(latent_sites(g).values())
    if len(latent) > 1 or any(not site["fn"].has_rsample for site in latent):
        raise ValueError("the iwae-dreg objective needs a guide with one reparameterized "
                         f"latent site per item; {model.name!r} has "
                         f"{[site['name'] for site in latent]}")
    weights: list[Tensor] = []  # the normalized weights [K, B, T], known after the forward

    def times_weight(grad: Tensor) -> Tensor:  # grad [K, B, T, *event]
        w = weights[0]
        return grad * w.reshape(w.shape + (1,) * (grad.dim() - w.dim()))

    for site in latent:
        if site["value"].requires_grad:
            site["value"].register_hook(times_weight)
        site["fn"] = _stop_parameters(site["fn"])
    lp, lq = trace_log_densities(m, g, num_particles, x.shape[0], x.shape[1], per_item=True)
    lw = lp - lq  # [K, B, T]
    weights.append(torch.softmax(lw.detach(), 0))
    surrogate = (weights[0] * lw).sum(0)
    bound = torch.logsumexp(lw.detach(), 0) - math.log(num_particles)
    return bound + (surrogate - surrogate.detach())


class ELBOLoss(nn.Module):
    """Negative ELBO (or IWAE bound) per item of a :class:`FewShotModel`, as an ``nn.Module``.

    Args:
        model: the few-shot model (its parameters are this module's parameters).
        objective: ``"elbo"`` (``Trace_ELBO``), ``"iwae"`` (the bound of ``RenyiELBO(alpha=0)``)
            or ``"iwae-dreg"`` (the same bound, per item, with the doubly reparameterized
            gradient: :func:`dreg_bounds`).
        num_particles: Monte Carlo samples per step (vectorized).
        position_weights: weights of the items' terms by position (see the module
            docstring); ``()``: every term weighs 1. Only for autoregressive models and
            the ``"elbo"`` objective; :meth:`plain` turns them (and KL annealing) off.
        singleton_weight: weight of the extra term that scores every item as a set of
            one (module docstring); 0: none. :meth:`plain` turns it off.
    """

    def __init__(
        self,
        model: FewShotModel,
        objective: str = "elbo",
        num_particles: int = 1,
        position_weights: Sequence[float] = (),
        singleton_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; use one of {OBJECTIVES}")
        if num_particles < 1:
            raise ValueError("num_particles must be >= 1")
        if objective.startswith("iwae") and num_particles < 2:
            raise ValueError(f"the {objective} objective needs num_particles >= 2")
        if objective == "iwae-dreg" and model.has_set_latent:
            raise ValueError(f"the iwae-dreg objective needs a model without a per-set latent "
                             f"(its items' own bounds); {model.name!r} has one")
        if any(not (math.isfinite(w) and w > 0) for w in position_weights):
            raise ValueError(f"position weights must be finite and > 0, got {position_weights}")
        if position_weights and objective != "elbo":
            raise ValueError("position weights apply to the elbo objective only")
        if position_weights and not model.autoregressive:
            raise ValueError(
                f"position weights need an autoregressive model (terms log p(x_t | x_<t)); "
                f"{model.name!r} is not one"
            )
        if not (math.isfinite(singleton_weight) and singleton_weight >= 0):
            raise ValueError(f"singleton_weight must be finite and >= 0, got {singleton_weight}")
        self.position_weights = tuple(float(w) for w in position_weights)
        self.singleton_weight = float(singleton_weight)
        self.model = model
        self.objective = objective
        self.num_particles = num_particles
        self.beta = 1.0
        self._elbo = Trace_ELBO(
            num_particles=num_particles,
            vectorize_particles=num_particles > 1,
            max_plate_nesting=2,
        )

    def _scaled(self, w: Tensor | None) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(LatentScale(self.beta))
        if w is not None:
            stack.enter_context(ItemWeights(w))
        return stack

    def _model(self, x: Tensor, mask: Tensor, ctx: dict | None, w: Tensor | None) -> None:
        with self._scaled(w):
            self.model.model(x, mask, ctx)

    def _guide(self, x: Tensor, mask: Tensor, ctx: dict | None, w: Tensor | None) -> None:
        with self._scaled(w):
            self.model.guide(x, mask, ctx)

    @contextlib.contextmanager
    def plain(self) -> Iterator[None]:
        """Within: the plain bound (KL weight 1, every term weighing 1, no singleton term),
        e.g. for validation."""
        saved = self.beta, self.position_weights, self.singleton_weight
        self.beta, self.position_weights, self.singleton_weight = 1.0, (), 0.0
        try:
            yield
        finally:
            self.beta, self.position_weights, self.singleton_weight = saved

    def _negative_bound(
        self, x: Tensor, mask: Tensor, ctx: dict | None, weighted: bool = True,
        per_item: bool = False,
    ) -> Tensor:
        """Negative bound summed over the sets of ``x[B, T, ...]`` (``ctx`` from
        ``model.prepare``), the items' terms weighted by position when ``weighted`` and
        position weights are set; ``per_item``: every real item is its own term (the
        IWAE bound of each item apart; for models without a per-set latent)."""
        if self.objective == "iwae-dreg":
            bound = dreg_bounds(self.model, x, mask, self.num_particles, ctx)
            return -bound[mask].sum()
        if self.objective == "iwae":
            K = self.num_particles
            # a model without a per-set latent has one latent per item, independent given
            # the set (GMN, CVAE: per conditional log p(x_t | x_<t)), so the sum of each
            # item's own bound is a bound on log p(X), and a far tighter one than a bound
            # on the set's joint weight, whose variance grows with the set
            per_item = per_item or not self.model.has_set_latent
            lw = self.model.log_weights(x, mask, K, per_item=per_item, ctx=ctx)
            bound = torch.logsumexp(lw, 0) - math.log(K)  # [B] or [B, T]
            return -(bound[mask] if per_item else bound).sum()
        w = None
        if weighted and self.position_weights:
            w = item_weights(self.position_weights, x.shape[1]).to(x.device)
        return self._elbo.differentiable_loss(self._model, self._guide, x, mask, ctx, w)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """Negative bound in nats per real item (a scalar to minimise); with position
        weights or a singleton term, the weighted sum of the terms per real item.

        ``normalizer`` replaces the local item count as the divisor (data-parallel
        training divides by the global count over the world size). A model with an urn
        (``model.urn``) is trained on each set's distinct items, and the urn's exact terms
        (no parameters) are added, so the loss is still the whole set's bound.
        """
        mask = as_mask(x, mask)
        n_items = mask.sum().clamp(min=1) if normalizer is None else normalizer
        mask, urn_terms = self.model.urn_split(x, mask)
        with pyro.settings.context(module_local_params=True):
            ctx = self.model.prepare(x, mask)
            loss = self._negative_bound(x, mask, ctx) - urn_terms.sum()
            if self.singleton_weight and bool(mask.any()):
                # every real item as a set of one, from the episode's features where the
                # model can (prepare_singletons); position weights are for episodes: a set
                # of one is all 0-shot term
                x1, m1, ctx1 = self.model.prepare_singletons(x, mask, ctx)
                single = self._negative_bound(
                    x1, m1, ctx1, weighted=False, per_item=not self.model.has_set_latent
                )
                loss = loss + self.singleton_weight * single
        return loss / n_items
