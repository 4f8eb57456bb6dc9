"""Hierarchical Beta-Bernoulli pixel model: an exact few-shot density baseline for images.

Generative story::

    alpha_d, beta_d                          # per pixel, learned across training classes
    for each set (class) b:
        theta_bd ~ Beta(alpha_d, beta_d)     # the class's ink probability per pixel: "a"
        for each item (drawing) i:
            x_bid ~ Bernoulli(theta_bd)      # pixels independent given the class

Everything is closed form. With ``s_d`` the ink count of pixel d over the n context
items the posterior is ``Beta(alpha_d + s_d, beta_d + n - s_d)``, the predictive is

    p(x' | X) = prod_d p_d^x'_d (1 - p_d)^(1 - x'_d)
    p_d = (alpha_d + s_d) / (alpha_d + beta_d + n)

and the evidence is ``log p(X) = sum_d log B(alpha_d + s_d, beta_d + n - s_d) - log B(alpha_d,
beta_d)``. The hyper-parameters are fitted by empirical Bayes (type-II maximum likelihood):
maximize ``sum_c log p(X_c)`` over the training classes (:meth:`fit_empirical_bayes`). The
guide is the exact posterior, so the ELBO equals ``log p(X)`` and importance sampling has
zero variance. :meth:`conditional_log_likelihoods` is the exact chain rule
``log p(x_t | x_<t)``: an exact few-shot NLL baseline on Omniglot for every number of shots.

References:
    [1] Bernardo & Smith, "Bayesian Theory", 1994, section 4.5 (exchangeability).
    [2] Minka, "Estimating a Dirichlet distribution", 2000 (Polya / Beta-Binomial ML).
    [3] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018 (the evaluation protocol).
"""

from __future__ import annotations

import logging
import math

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ppl_fewshot.models.annealing import AIS
from ppl_fewshot.models.base import as_mask
from ppl_fewshot.models.set_latent import SetLatentModel

logger = logging.getLogger(__name__)


def _lbeta(a: Tensor, b: Tensor) -> Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


class HierarchicalBernoulliPixels(SetLatentModel):
    """Per-pixel Beta-Bernoulli model of a class of images, Beta prior fitted by empirical Bayes.

    Args:
        event_shape: shape of one image.
        init_alpha: initial Beta ``alpha`` for every pixel.
        init_beta: initial Beta ``beta`` for every pixel.
        min_log: lower clamp of ``log alpha`` and ``log beta`` (pixels never inked in
            training would otherwise drive ``alpha -> 0``).
        max_log: upper clamp of ``log alpha`` and ``log beta``.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...] = (1, 28, 28),
        init_alpha: float = 0.1,
        init_beta: float = 1.0,
        min_log: float = -7.0,
        max_log: float = 7.0,
    ) -> None:
        super().__init__(tuple(event_shape))
        self.min_log, self.max_log = float(min_log), float(max_log)
        self.log_alpha = nn.Parameter(torch.full(self.event_shape, math.log(init_alpha)))
        self.log_beta = nn.Parameter(torch.full(self.event_shape, math.log(init_beta)))

    @property
    def param_event_dims(self) -> tuple[int, ...]:  # type: ignore[override]
        return (len(self.event_shape),) * 2

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.clamp(self.min_log, self.max_log).exp()

    @property
    def beta(self) -> Tensor:
        return self.log_beta.clamp(self.min_log, self.max_log).exp()

    # sites ----------------------------------------------------------------------
    def prior(self) -> dist.Distribution:
        return dist.Beta(self.alpha, self.beta).to_event(len(self.event_shape))

    def likelihood(self, a: Tensor) -> dist.Distribution:
        return dist.Bernoulli(probs=a, validate_args=False).to_event(len(self.event_shape))

    def _stats(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Ink counts ``s[B, *event]`` and set sizes ``n[B, 1, ..., 1]``."""
        m = as_mask(x, mask).to(x.dtype)
        m = m.reshape(*m.shape, *(1,) * len(self.event_shape))
        return (x * m).sum(1), m.sum(1)

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        """The exact conjugate posterior ``(alpha + s, beta + n - s)``."""
        s, n = self._stats(x, mask)
        return self.alpha + s, self.beta + n - s

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        return dist.Beta(*params).to_event(len(self.event_shape))

    def sample(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        """Bernoulli means ``theta ~ p(theta | context)``: ``[B, num_samples, *event]``."""
        with torch.no_grad():
            return self.sample_latent(context, num_samples, context_mask)

    # exact answers ------------------------------------------------------------------
    def exact_posterior(self, context: Tensor, mask: Tensor | None = None) -> dist.Distribution:
        """``Beta(alpha + s, beta + n - s)`` per pixel, batch ``[B]``."""
        return self.make_q(self.guide_params(context, as_mask(context, mask)))

    def exact_log_evidence(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log p(X)`` per set ``[B]`` in nats."""
        s, n = self._stats(x, mask)
        a, b = self.alpha, self.beta
        return (_lbeta(a + s, b + n - s) - _lbeta(a, b)).flatten(1).sum(-1)

    def predictive_probs(self, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        """Posterior-mean ink probabilities ``p(x'_d = 1 | context)``, ``[B, *event]``."""
        s, n = self._stats(context, context_mask)
        return (self.alpha + s) / (self.alpha + self.beta + n)

    def exact_log_predictive(
        self, query: Tensor, context: Tensor, context_mask: Tensor | None = None
    ) -> Tensor:
        """``log p(x_q | context)`` per query item ``[B, Q]`` in nats."""
        s, n = self._stats(context, context_mask)
        a, b = (self.alpha + s).unsqueeze(1), (self.beta + n - s).unsqueeze(1)
        lp = query * (a.log() - (a + b).log()) + (1 - query) * (b.log() - (a + b).log())
        return lp.flatten(2).sum(-1)

    def own_conditionals(
        self,
        x: Tensor,
        mask: Tensor,
        pos: list[int],
        num_particles: int,
        chunk: int | None = None,
        ais: AIS | None = None,
        inner: int = 1,
    ) -> Tensor:
        """Exact ``log p(x_t | x_<t)`` of the items ``pos``, ``[B, len(pos)]`` (0 for padded
        items), behind :meth:`conditional_log_likelihoods`.

        ``num_particles``, ``chunk``, ``ais`` and ``inner`` are accepted for the base-class
        signature and ignored: no sampling happens.
        """
        m = as_mask(x, mask).to(x.dtype)
        mm = m.reshape(*m.shape, *(1,) * len(self.event_shape))
        xs = x * mm
        s_before = torch.cumsum(xs, 1) - xs  # ink counts of earlier real items
        n_before = torch.cumsum(mm, 1) - mm
        a, b = self.alpha + s_before, self.beta + n_before - s_before
        lp = x * (a.log() - (a + b).log()) + (1 - x) * (b.log() - (a + b).log())
        return (lp.flatten(2).sum(-1) * m)[:, pos]

    # empirical Bayes -----------------------------------------------------------------
    def fit_empirical_bayes(
        self,
        images: Tensor,
        num_steps: int = 500,
        lr: float = 0.05,
        mask: Tensor | None = None,
    ) -> list[float]:
        """Fit ``alpha, beta`` by maximizing the exact marginal likelihood of training classes.

        Args:
            images: ``[N, M, *event]`` floats in {0, 1}: N classes of M images.
            num_steps: Adam steps on ``(log alpha, log beta)``.
            lr: Adam learning rate.
            mask: optional ``[N, M]`` mask of real images.

        Returns:
            the loss ``-sum_c log p(X_c) / (number of images)`` after each step (nats per image).
        """
        with torch.no_grad():
            s, n = self._stats(images, mask)  # sufficient statistics, computed once
            num_images = float(as_mask(images, mask).sum())
        opt = torch.optim.Adam([self.log_alpha, self.log_beta], lr=lr)
        losses = []
        for _ in range(num_steps):
            a, b = self.alpha, self.beta
            loss = -(_lbeta(a + s, b + n - s) - _lbeta(a, b)).sum() / num_images
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        logger.info("empirical Bayes: %.3f nats per image after %d steps", losses[-1], num_steps)
        return losses
