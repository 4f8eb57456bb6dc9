"""Non-conjugate de Finetti models: a neural image model and a small logistic-normal model.

Both are exchangeable set models with a single latent per set and no per-item latent::

    p(X) = integral p(a) prod_i p(x_i | a) da,      p(x' | X) = integral p(a | X) p(x' | a) da

with an amortized Gaussian guide ``q(a | X)`` built on a permutation-invariant
:class:`~ppl_fewshot.nn.SetEncoder`, trained by maximizing the ELBO summed over sets::

    ELBO(X) = E_q(a|X)[ log p(a) + sum_i m_i log p(x_i | a) - log q(a | X) ] <= log p(X)

Neither integral is closed form: evidence and predictive come from the base class's
importance sampling with ``q(a|X)`` as proposal, and :class:`LogisticNormalSet` is small
enough that NUTS gives a reference posterior.

References:
    [1] de Finetti, "La prevision: ses lois logiques, ses sources subjectives", 1937.
    [2] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
    [3] Hoffman & Gelman, "The No-U-Turn Sampler", JMLR 2014.
"""

from __future__ import annotations

import logging

import pyro.distributions as dist
import torch
from torch import Tensor

from ppl_fewshot.models.base import loc_scale
from ppl_fewshot.models.set_latent import SetLatentModel
from ppl_fewshot.nn import ConvDecoder, ConvEncoder, SetEncoder

logger = logging.getLogger(__name__)


class NeuralDeFinetti(SetLatentModel):
    """One latent per set and a neural Bernoulli image likelihood (no per-item latent).

    Generative story::

        for each set b:
            a_b ~ Normal(0, I)                        # a_dim units
            for each item i:
                x_bi ~ Bernoulli(ConvDecoder(a_b))    # 28x28 pixels, i.i.d. given a_b

    Guide: ``q(a_b | X_b) = Normal(mu, sigma)`` with ``(mu, log-ish sigma) =
    SetEncoder(ConvEncoder(x_bi))``; the empty set gives the prior exactly.
    The decoder runs once per set (and particle), not once per item.

    Args:
        a_dim: latent units per set.
        hidden: width of the conv features and of the set encoder.
        channels: channels of the first convolution.
        pooling: ``"mean"`` or ``"attention"``.
        event_shape: shape of one item.
    """

    def __init__(
        self,
        a_dim: int = 32,
        hidden: int = 128,
        channels: int = 16,
        pooling: str = "mean",
        event_shape: tuple[int, ...] = (1, 28, 28),
    ) -> None:
        super().__init__(tuple(event_shape))
        self.a_dim = a_dim
        self.encoder = ConvEncoder(hidden, channels, in_channels=self.event_shape[0])
        self.set_encoder = SetEncoder(hidden, 2 * a_dim, hidden, pooling)
        self.decoder = ConvDecoder(a_dim, channels, out_channels=self.event_shape[0])
        self.register_buffer("_zero", torch.zeros(()))

    def prior(self) -> dist.Distribution:
        z = self._zero.expand(self.a_dim)
        return dist.Normal(z, torch.ones_like(z)).to_event(1)

    def likelihood(self, a: Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=self.decoder(a), validate_args=False).to_event(3)

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        loc, scale = loc_scale(self.set_encoder(self.encoder(x), mask))
        empty = self.set_sizes(x, mask) == 0  # [B, 1]: the posterior of no data is the prior
        loc = torch.where(empty, torch.zeros_like(loc), loc)
        return loc, torch.where(empty, torch.ones_like(loc), scale)

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        return dist.Normal(*params).to_event(1)

    def sample(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        """Bernoulli means ``sigmoid(decoder(a))``, ``a ~ q(a | context)``: ``[B, S, *event]``."""
        with torch.no_grad():
            a = self.sample_latent(context, num_samples, context_mask)
            return torch.sigmoid(self.decoder(a))


class LogisticNormalSet(SetLatentModel):
    """A small non-conjugate set model: Gaussian latent, logistic Bernoulli features.

    Generative story::

        for each set b:
            a_b ~ Normal(0, I_L)                                  # L = latent_dim (2-3)
            for each item i:
                x_bi ~ Bernoulli(sigmoid(W a_b + c))              # D binary features

    ``W [D, L]`` and ``c [D]`` are fixed and known (drawn once from ``seed``). There is
    no closed form; NUTS on :meth:`model` is the reference posterior.

    Guide: a full-covariance Gaussian in Laplace form, ``q(a|X) = N(Lambda^-1 n h,
    Lambda^-1)`` with precision ``Lambda = I + n (R R^T + 1e-3 I)`` (``R`` lower
    triangular) and ``(h, R) = SetEncoder(X)``: the prior's precision plus ``n`` times a
    learned per-item curvature, as a Laplace approximation has. The empty set gives the
    prior ``N(0, I)`` exactly.

    Args:
        latent_dim: L.
        num_features: D, binary features per item.
        weight_scale: standard deviation of the entries of ``W``.
        bias_scale: standard deviation of the entries of ``c``.
        seed: seed of ``W`` and ``c``.
        hidden: width of the guide's set encoder.
        pooling: ``"mean"`` or ``"attention"``.
    """

    param_event_dims = (1, 2)

    def __init__(
        self,
        latent_dim: int = 2,
        num_features: int = 8,
        weight_scale: float = 1.0,
        bias_scale: float = 0.5,
        seed: int = 0,
        hidden: int = 32,
        pooling: str = "mean",
    ) -> None:
        super().__init__((num_features,))
        g = torch.Generator().manual_seed(seed)
        self.latent_dim = latent_dim
        weight = torch.randn(num_features, latent_dim, generator=g) * weight_scale
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.randn(num_features, generator=g) * bias_scale)
        self.register_buffer("_eye", torch.eye(latent_dim))
        self.num_tril = latent_dim * (latent_dim + 1) // 2
        self.encoder = SetEncoder(num_features, latent_dim + self.num_tril, hidden, pooling)

    def prior(self) -> dist.Distribution:
        z = self._eye[0] * 0
        return dist.Normal(z, torch.ones_like(z)).to_event(1)

    def logits(self, a: Tensor) -> Tensor:
        return a @ self.weight.T + self.bias

    def likelihood(self, a: Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=self.logits(a), validate_args=False).to_event(1)

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        L = self.latent_dim
        out = self.encoder(x, mask)
        h, tril = out[..., :L], out[..., L:]
        n = self.set_sizes(x, mask)  # [B, 1]
        rows, cols = torch.tril_indices(L, L, device=x.device)
        R = x.new_zeros(*tril.shape[:-1], L, L)
        R[..., rows, cols] = tril
        prec = self._eye + n[..., None] * (R @ R.transpose(-1, -2) + 1e-3 * self._eye)
        loc = torch.linalg.solve(prec, n * h)
        return loc, prec

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        loc, prec = params
        return dist.MultivariateNormal(loc, precision_matrix=prec)
