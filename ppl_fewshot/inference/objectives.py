"""Training objectives as ``nn.Module`` losses over Pyro's ELBOs.

``ELBOLoss(model)(x, mask)`` returns the negative ELBO in nats per real item:

    ELBO(X) = E_q[ log p(X | latents) ] + beta * E_q[ log p(latents) - log q(latents | X) ]

with ``beta = 1`` the evidence lower bound, ``beta < 1`` during KL annealing (the scale is
applied by :class:`LatentScale` to every latent site of model and guide, so the data term
is untouched). ``objective="iwae"`` is the importance weighted bound ``E[log (1/K) sum_k w_k]`` [2]
(what ``RenyiELBO(alpha=0)`` computes), built on the model's vectorized
``log_weights`` so that it is differentiable; KL annealing does not apply to it.

Features that model and guide share are computed once per step by ``model.prepare`` and
handed to both.

References:
    [1] Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    [2] Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
    [3] Bowman et al., "Generating Sentences from a Continuous Space", CoNLL 2016 (KL annealing).
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import Tensor, nn

from ppl_fewshot.models.base import FewShotModel, as_mask

OBJECTIVES = ("elbo", "iwae")


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


class ELBOLoss(nn.Module):
    """Negative ELBO (or IWAE bound) per item of a :class:`FewShotModel`, as an ``nn.Module``.

    Args:
        model: the few-shot model (its parameters are this module's parameters).
        objective: ``"elbo"`` (``Trace_ELBO``) or ``"iwae"`` (the bound of ``RenyiELBO(alpha=0)``).
        num_particles: Monte Carlo samples per step (vectorized).
    """

    def __init__(
        self, model: FewShotModel, objective: str = "elbo", num_particles: int = 1
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; use one of {OBJECTIVES}")
        if num_particles < 1:
            raise ValueError("num_particles must be >= 1")
        if objective == "iwae" and num_particles < 2:
            raise ValueError("the iwae objective needs num_particles >= 2")
        self.model = model
        self.objective = objective
        self.num_particles = num_particles
        self.beta = 1.0
        self._elbo = Trace_ELBO(
            num_particles=num_particles,
            vectorize_particles=num_particles > 1,
            max_plate_nesting=2,
        )

    def _model(self, x: Tensor, mask: Tensor, ctx: dict | None) -> None:
        with LatentScale(self.beta):
            self.model.model(x, mask, ctx)

    def _guide(self, x: Tensor, mask: Tensor, ctx: dict | None) -> None:
        with LatentScale(self.beta):
            self.model.guide(x, mask, ctx)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """Negative bound in nats per real item (a scalar to minimise).

        ``normalizer`` replaces the local item count as the divisor (data-parallel
        training divides by the global count over the world size).
        """
        mask = as_mask(x, mask)
        n_items = mask.sum().clamp(min=1) if normalizer is None else normalizer
        with pyro.settings.context(module_local_params=True):
            if self.objective == "iwae":
                lw = self.model.log_weights(x, mask, self.num_particles)  # [K, B]
                bound = torch.logsumexp(lw, 0) - math.log(self.num_particles)
                return -bound.sum() / n_items
            ctx = self.model.prepare(x, mask)
            loss = self._elbo.differentiable_loss(self._model, self._guide, x, mask, ctx)
        return loss / n_items
