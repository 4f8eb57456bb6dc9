"""Normal set model with unknown mean and variance under a Normal-Inverse-Gamma prior.

Generative story::

    for each set b:
        sigma2_b ~ InverseGamma(alpha0, beta0)
        mu_b ~ Normal(m0, sqrt(sigma2_b / kappa0))      # a_b = (mu_b, sigma2_b)
        for each item i:
            x_bi ~ Normal(mu_b, sqrt(sigma2_b))          # event shape (1,)

Exact posterior ``NIG(m_n, kappa_n, alpha_n, beta_n)`` with ``kappa_n = kappa0 + n``,
``m_n = (kappa0 m0 + n xbar) / kappa_n``, ``alpha_n = alpha0 + n/2`` and
``beta_n = beta0 + S/2 + kappa0 n (xbar - m0)^2 / (2 kappa_n)`` (``S`` the sum of squared
deviations); exact evidence
``log G(alpha_n) - log G(alpha0) + alpha0 log beta0 - alpha_n log beta_n
+ (log kappa0 - log kappa_n)/2 - (n/2) log(2 pi)``; predictive Student-t with
``2 alpha_n`` degrees of freedom, location ``m_n`` and squared scale
``beta_n (kappa_n + 1) / (alpha_n kappa_n)``.

Guide choice: ``q(a|X)`` is itself a Normal-Inverse-Gamma (``q(sigma2) = InvGamma``,
``q(mu|sigma2) = Normal(m, sqrt(sigma2/kappa))``) with amortized parameters. Unlike a
2-d Gaussian on ``(mu, log sigma2)`` this family contains the exact posterior, whose
mean marginal is a heavy-tailed Student-t at small n; a Gaussian proposal there has
lighter tails than the target and makes importance sampling of log p(X) unreliable.
The parameters follow the natural-parameter form ``kappa_q = kappa0 + n softplus(g1)``,
``kappa_q m_q = kappa0 m0 + n g2``, ``alpha_q = alpha0 + n softplus(g3)``,
``beta_q = beta0 + n softplus(g4)`` with ``g = SetEncoder([x, x^2])`` learned.

References:
    [1] Murphy, "Conjugate Bayesian analysis of the Gaussian distribution", 2007.
    [2] Gelman et al., "Bayesian Data Analysis", 3rd ed., section 3.3.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

from ppl_fewshot.models.base import as_mask
from ppl_fewshot.models.set_latent import SetLatentModel, pseudo_count
from ppl_fewshot.nn import SetEncoder


class NIGDistribution(TorchDistribution):
    """Normal-Inverse-Gamma over ``(mu, sigma2)``: event shape ``(2,)``.

    ``sigma2 ~ InverseGamma(alpha, beta)``, ``mu | sigma2 ~ Normal(loc, sqrt(sigma2/kappa))``.

    Args:
        params: ``[..., 4]`` tensor of ``(loc, kappa, alpha, beta)``; the batch shape is
            ``params.shape[:-1]``.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, params: Tensor, validate_args: bool | None = None) -> None:
        self.params = params
        super().__init__(params.shape[:-1], torch.Size([2]), validate_args=validate_args)

    @property
    def loc(self) -> Tensor:
        return self.params[..., 0]

    @property
    def kappa(self) -> Tensor:
        return self.params[..., 1]

    @property
    def alpha(self) -> Tensor:
        return self.params[..., 2]

    @property
    def beta(self) -> Tensor:
        return self.params[..., 3]

    def expand(self, batch_shape, _instance=None) -> NIGDistribution:
        new = self._get_checked_instance(NIGDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        new.params = self.params.expand(*batch_shape, 4)
        super(NIGDistribution, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        precision = dist.Gamma(self.alpha, self.beta).rsample(sample_shape)
        sigma2 = 1.0 / precision
        eps = torch.randn(shape, dtype=self.params.dtype, device=self.params.device)
        mu = self.loc + (sigma2 / self.kappa).sqrt() * eps
        return torch.stack([mu, sigma2], -1)

    def log_prob(self, value: Tensor) -> Tensor:
        mu, sigma2 = value[..., 0], value[..., 1]
        a, b = self.alpha, self.beta
        lp_s2 = a * b.log() - torch.lgamma(a) - (a + 1) * sigma2.log() - b / sigma2
        lp_mu = -0.5 * (
            math.log(2 * math.pi) + (sigma2 / self.kappa).log()
            + self.kappa * (mu - self.loc) ** 2 / sigma2
        )
        return lp_s2 + lp_mu

    @property
    def mean(self) -> Tensor:
        return torch.stack([self.loc, self.beta / (self.alpha - 1)], -1)

    @property
    def variance(self) -> Tensor:
        """Marginal variances of ``mu`` and ``sigma2`` (need ``alpha > 2``)."""
        a, b = self.alpha, self.beta
        return torch.stack(
            [b / ((a - 1) * self.kappa), b**2 / ((a - 1) ** 2 * (a - 2))], -1
        )


class NormalInverseGamma(SetLatentModel):
    """Normal items with unknown mean and variance; the latent ``a = (mu, sigma2)``.

    See the module docstring for the generative story and closed forms. Items are
    ``x[B, T, 1]``; :meth:`exact_posterior` returns a :class:`NIGDistribution` whose
    ``loc, kappa, alpha, beta`` are the posterior parameters.

    Args:
        prior_loc: m0.
        prior_kappa: kappa0 (prior pseudo-observations for the mean).
        prior_alpha: alpha0 (keep > 2 so that posterior variances exist).
        prior_beta: beta0.
        hidden: width of the guide's set encoder.
        pooling: ``"mean"`` or ``"attention"`` pooling in the set encoder.
    """

    def __init__(
        self,
        prior_loc: float = 0.0,
        prior_kappa: float = 1.0,
        prior_alpha: float = 5.0,
        prior_beta: float = 4.0,
        hidden: int = 32,
        pooling: str = "mean",
    ) -> None:
        super().__init__((1,))
        self.register_buffer(
            "prior_params",
            torch.tensor([prior_loc, prior_kappa, prior_alpha, prior_beta], dtype=torch.float),
        )
        self.encoder = SetEncoder(2, 4, hidden, pooling)

    def prior(self) -> dist.Distribution:
        return NIGDistribution(self.prior_params)

    def likelihood(self, a: Tensor) -> dist.Distribution:
        return dist.Normal(a[..., 0:1], a[..., 1:2].sqrt(), validate_args=False).to_event(1)

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        g = self.encoder(torch.cat([x, x**2], -1), mask)  # [B, 4]
        n = self.set_sizes(x, mask)[:, 0]
        m0, k0, a0, b0 = self.prior_params.unbind(-1)
        kappa = k0 + n * pseudo_count(g[:, 0], 1.0)
        loc = (k0 * m0 + n * g[:, 1]) / kappa
        alpha = a0 + n * pseudo_count(g[:, 2], 1.0)
        beta = b0 + n * pseudo_count(g[:, 3], 1.0)
        return (torch.stack([loc, kappa, alpha, beta], -1),)

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        return NIGDistribution(params[0])

    # exact answers -------------------------------------------------------------
    def _posterior_params(self, x: Tensor, mask: Tensor | None) -> Tensor:
        m = as_mask(x, mask).to(x.dtype)
        xs = x[..., 0]
        n = m.sum(-1)
        xbar = (xs * m).sum(-1) / n.clamp(min=1)
        ss = (((xs - xbar[:, None]) ** 2) * m).sum(-1)
        m0, k0, a0, b0 = self.prior_params.unbind(-1)
        kn = k0 + n
        return torch.stack(
            [
                (k0 * m0 + n * xbar) / kn,
                kn,
                a0 + n / 2,
                b0 + ss / 2 + k0 * n * (xbar - m0) ** 2 / (2 * kn),
            ],
            -1,
        )

    def exact_posterior(self, context: Tensor, mask: Tensor | None = None) -> NIGDistribution:
        """``p(mu, sigma2 | context)`` as a :class:`NIGDistribution` with batch ``[B]``."""
        return NIGDistribution(self._posterior_params(context, mask))

    def exact_log_evidence(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log p(X)`` per set ``[B]``."""
        post = self._posterior_params(x, mask)
        n = as_mask(x, mask).to(x.dtype).sum(-1)
        _, k0, a0, b0 = self.prior_params.unbind(-1)
        _, kn, an, bn = post.unbind(-1)
        return (
            torch.lgamma(an) - torch.lgamma(a0) + a0 * b0.log() - an * bn.log()
            + 0.5 * (k0.log() - kn.log()) - 0.5 * n * math.log(2 * math.pi)
        )

    def exact_log_predictive(
        self, query: Tensor, context: Tensor, context_mask: Tensor | None = None
    ) -> Tensor:
        """``log p(x_q | context)`` per query item ``[B, Q]``: a Student-t density."""
        mn, kn, an, bn = self._posterior_params(context, context_mask).unbind(-1)
        scale = (bn * (kn + 1) / (an * kn)).sqrt()
        t = dist.StudentT(2 * an[:, None], mn[:, None], scale[:, None])
        return t.log_prob(query[..., 0])
