"""Conjugate exchangeable set models with exact posteriors, predictives and evidence.

Three de Finetti models whose integrals are closed form, so every estimator in the
library (ELBO, importance-sampled evidence, predictive, amortized posterior) can be
checked against the exact answer:

* :class:`BetaBernoulli` (``"beta-bernoulli"``): D binary features per item;
* :class:`DirichletCategorical` (``"dirichlet-categorical"``): one-hot items over K categories;
* :class:`~ppl_fewshot.models.nig.NormalInverseGamma` (``"normal-inverse-gamma"``): real
  items with unknown mean and variance (defined in :mod:`ppl_fewshot.models.nig`).

Amortized guides (all three): a :class:`~ppl_fewshot.nn.SetEncoder` over the items
produces a learned set summary ``g(X) = rho(mean_i phi(x_i), log(1 + n))`` and the
guide's natural parameters are the prior's plus ``n`` times that summary, e.g. for
Beta-Bernoulli ``q(theta|X) = Beta(alpha0 + n pc(g_alpha(X)), beta0 + n pc(g_beta(X)))``
with ``pc`` a sharp softplus (:func:`~ppl_fewshot.models.set_latent.pseudo_count`). This
is the structure of every conjugate posterior (prior plus a sum of per-item
statistics), so the family contains the exact posterior; the network still has to
*learn* which statistics to sum (the exact targets are the per-feature item means). The
empty set gives the prior exactly. Train with sets whose sizes cover the sizes you will
condition on: accuracy degrades at the edge of the training range.

References:
    [1] Gelman et al., "Bayesian Data Analysis", 3rd ed., ch. 2-3 (conjugate families).
    [2] Murphy, "Conjugate Bayesian analysis of the Gaussian distribution", 2007.
    [3] Zaheer et al., "Deep Sets", NeurIPS 2017.
"""

from __future__ import annotations

import logging

import pyro.distributions as dist
import torch
from torch import Tensor

from ppl_fewshot.models.base import as_mask
from ppl_fewshot.models.nig import NormalInverseGamma
from ppl_fewshot.models.set_latent import SetLatentModel, pseudo_count
from ppl_fewshot.nn import SetEncoder

logger = logging.getLogger(__name__)


def _counts(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Masked sums over items: ``(sum_i m_i x_i [B, D], n [B, 1])``."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1), m.sum(1)


class BetaBernoulli(SetLatentModel):
    """Beta-Bernoulli set model: D independent binary features per item.

    Generative story::

        for each set b:
            theta_b ~ Beta(alpha0, beta0)              # [D], the latent "a"
            for each item i:
                x_bi ~ Bernoulli(theta_b)              # [D] binary features

    Exact posterior ``Beta(alpha0 + s, beta0 + n - s)`` with ``s = sum_i x_i``; exact
    evidence ``sum_d log B(alpha0 + s_d, beta0 + n - s_d) - log B(alpha0, beta0)``.

    Args:
        dim: features per item (D).
        prior_alpha: Beta prior's first concentration (shared by all features).
        prior_beta: Beta prior's second concentration.
        hidden: width of the guide's set encoder.
        pooling: ``"mean"`` or ``"attention"`` pooling in the set encoder.
    """

    def __init__(
        self,
        dim: int = 5,
        prior_alpha: float = 1.5,
        prior_beta: float = 2.0,
        hidden: int = 32,
        pooling: str = "mean",
    ) -> None:
        super().__init__((dim,))
        self.dim = dim
        self.register_buffer("alpha0", torch.full((dim,), float(prior_alpha)))
        self.register_buffer("beta0", torch.full((dim,), float(prior_beta)))
        self.encoder = SetEncoder(dim, 2 * dim, hidden, pooling)

    def prior(self) -> dist.Distribution:
        return dist.Beta(self.alpha0, self.beta0).to_event(1)

    def likelihood(self, a: Tensor) -> dist.Distribution:
        return dist.Bernoulli(probs=a, validate_args=False).to_event(1)

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        g = pseudo_count(self.encoder(x, mask))  # [B, 2D] learned per-item pseudo-counts
        n = self.set_sizes(x, mask)
        ga, gb = g.chunk(2, -1)
        return self.alpha0 + n * ga, self.beta0 + n * gb

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        return dist.Beta(*params).to_event(1)

    # exact answers -------------------------------------------------------------
    def exact_posterior(self, context: Tensor, mask: Tensor | None = None) -> dist.Distribution:
        """``p(theta | context) = Beta(alpha0 + s, beta0 + n - s)``, batch ``[B]``."""
        s, n = _counts(context, as_mask(context, mask))
        return dist.Beta(self.alpha0 + s, self.beta0 + n - s).to_event(1)

    def exact_log_evidence(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log p(X)`` per set ``[B]`` (the sequence, not the binomial count)."""
        s, n = _counts(x, as_mask(x, mask))
        a0, b0 = self.alpha0, self.beta0

        def lbeta(a: Tensor, b: Tensor) -> Tensor:
            return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)

        return (lbeta(a0 + s, b0 + n - s) - lbeta(a0, b0)).sum(-1)

    def exact_log_predictive(
        self, query: Tensor, context: Tensor, context_mask: Tensor | None = None
    ) -> Tensor:
        """``log p(x_q | context)`` per query item ``[B, Q]``: posterior-mean Bernoulli."""
        post = self.exact_posterior(context, context_mask).base_dist
        p1 = (post.concentration1 / (post.concentration1 + post.concentration0)).unsqueeze(1)
        return (query * p1.log() + (1 - query) * torch.log1p(-p1)).sum(-1)


class DirichletCategorical(SetLatentModel):
    """Dirichlet-Categorical set model with one-hot items.

    Generative story::

        for each set b:
            pi_b ~ Dirichlet(alpha0)                   # [K], the latent "a"
            for each item i:
                x_bi ~ OneHotCategorical(pi_b)         # [K] one-hot

    Exact posterior ``Dirichlet(alpha0 + c)`` with counts ``c = sum_i x_i``; exact
    evidence ``log G(A0) - log G(A0 + n) + sum_k [log G(alpha0_k + c_k) - log G(alpha0_k)]``
    (G the gamma function, ``A0 = sum_k alpha0_k``). Padded items may be zero vectors.

    Args:
        num_categories: K.
        concentration: the symmetric Dirichlet prior's concentration per category.
        hidden: width of the guide's set encoder.
        pooling: ``"mean"`` or ``"attention"`` pooling in the set encoder.
    """

    def __init__(
        self,
        num_categories: int = 4,
        concentration: float = 1.0,
        hidden: int = 32,
        pooling: str = "mean",
    ) -> None:
        super().__init__((num_categories,))
        self.num_categories = num_categories
        self.register_buffer("alpha0", torch.full((num_categories,), float(concentration)))
        self.encoder = SetEncoder(num_categories, num_categories, hidden, pooling)

    def prior(self) -> dist.Distribution:
        return dist.Dirichlet(self.alpha0)

    def likelihood(self, a: Tensor) -> dist.Distribution:
        return dist.OneHotCategorical(probs=a, validate_args=False)

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        n = self.set_sizes(x, mask)
        return (self.alpha0 + n * pseudo_count(self.encoder(x, mask)),)

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        return dist.Dirichlet(params[0])

    # exact answers -------------------------------------------------------------
    def exact_posterior(self, context: Tensor, mask: Tensor | None = None) -> dist.Distribution:
        """``p(pi | context) = Dirichlet(alpha0 + counts)``, batch ``[B]``."""
        c, _ = _counts(context, as_mask(context, mask))
        return dist.Dirichlet(self.alpha0 + c)

    def exact_log_evidence(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log p(X)`` per set ``[B]`` (the ordered sequence of items)."""
        c, n = _counts(x, as_mask(x, mask))
        a0 = self.alpha0
        A0 = a0.sum()
        return (
            torch.lgamma(A0)
            - torch.lgamma(A0 + n[:, 0])
            + (torch.lgamma(a0 + c) - torch.lgamma(a0)).sum(-1)
        )

    def exact_log_predictive(
        self, query: Tensor, context: Tensor, context_mask: Tensor | None = None
    ) -> Tensor:
        """``log p(x_q | context)`` per query item ``[B, Q]``: ``log(alpha_k / sum alpha)``."""
        alpha = self.exact_posterior(context, context_mask).concentration
        logp = (alpha / alpha.sum(-1, keepdim=True)).log().unsqueeze(1)
        return (query * logp).sum(-1)


__all__ = ["BetaBernoulli", "DirichletCategorical", "NormalInverseGamma"]
