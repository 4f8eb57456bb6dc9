"""Convolutional VAE baseline: every item on its own, the context ignored.

Generative story::

    for each set b and item t:
        z_bt ~ Normal(0, I)                       # z_dim units
        x_bt ~ Bernoulli(decoder(z_bt))           # 28x28 pixels

Guide: ``q(z_bt | x_bt) = Normal(mu(x_bt), sigma(x_bt))`` from a conv encoder.
ELBO per item: ``E_q[log p(x|z)] - KL(q(z|x) || p(z))``.

This is the "VAE" row of the seed talk's table (0 shots only): a context-free
density, and the first model through the training spine.

References:
    [1] Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    [2] Bartunov & Vetrov, "Few-shot generative modelling with generative matching
        networks", AISTATS 2018 (the VAE baseline of table 1).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from ppl_fewshot.models.base import FewShotModel, as_mask, loc_scale
from ppl_fewshot.nn import image_decoder, image_encoder


class VAE(FewShotModel):
    """Context-free convolutional VAE with a Bernoulli likelihood.

    Args:
        z_dim: latent units per item.
        hidden: width of the encoder's feature vector.
        channels: channels of the first convolution.
        event_shape: shape of one item.
        arch: ``"conv"`` (:class:`~ppl_fewshot.nn.ConvEncoder` / ``ConvDecoder``, ELU, channels
            c-2c-4c) or ``"resnet"`` (:class:`~ppl_fewshot.nn.ResEncoder` / ``ResDecoder``,
            the GMN paper's residual PReLU networks [2]: encoder c-2c-2c, decoder 2c-c-c/2
            channels; ``channels=16`` is the paper's 16-32-32 / 32-16-8).
    """

    has_set_latent = False

    def __init__(
        self,
        z_dim: int = 32,
        hidden: int = 256,
        channels: int = 32,
        event_shape: tuple[int, ...] = (1, 28, 28),
        arch: str = "conv",
    ) -> None:
        super().__init__(tuple(event_shape))
        self.z_dim = z_dim
        self.encoder = image_encoder(arch, hidden, channels, self.event_shape[0])
        self.to_loc_scale = torch.nn.Linear(hidden, 2 * z_dim)
        self.decoder = image_decoder(arch, z_dim, channels, self.event_shape[0])
        self.register_buffer("_zero", torch.zeros(()))

    # sites ------------------------------------------------------------------
    def prior_z(self, shape: torch.Size) -> dist.Distribution:
        z0 = self._zero.expand(*shape, self.z_dim)
        return dist.Normal(z0, torch.ones_like(z0)).to_event(1)

    def posterior_z(self, x: Tensor) -> dist.Distribution:
        return dist.Normal(*loc_scale(self.to_loc_scale(self.encoder(x)))).to_event(1)

    def likelihood(self, z: Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=self.decoder(z), validate_args=False).to_event(3)

    # contract ---------------------------------------------------------------
    def model(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:  # the empty set: nothing to generate (Pyro plates cannot be empty)
            return
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            z = pyro.sample("z", self.prior_z(torch.Size([B, T])).mask(mask))
            pyro.sample("x", self.likelihood(z).mask(mask), obs=x)

    def guide(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:
            return
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            pyro.sample("z", self.posterior_z(x).mask(mask))

    def sample(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        B = context.shape[0]
        with torch.no_grad():
            z = self.prior_z(torch.Size([B, num_samples])).sample()
            return torch.sigmoid(self.decoder(z))

    def features(self, x: Tensor) -> Tensor:
        """Guide features of items ``[..., *event] -> [..., z_dim]`` (posterior means)."""
        return self.posterior_z(x).base_dist.loc
