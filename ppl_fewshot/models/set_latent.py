"""Shared machinery for exchangeable (de Finetti) models with one latent per set.

De Finetti's theorem writes an exchangeable set as a mixture of i.i.d. draws::

    p(X) = integral p(a) prod_i p(x_i | a) da          # one latent a per set
    p(x' | X) = integral p(a | X) p(x' | a) da        # few-shot generation

Every model in this family shares one program and one guide shape::

    with pyro.plate("sets", B, dim=-2):
        a ~ p(a)                                      # value [.., B, 1, *latent_event]
        with pyro.plate("items", T, dim=-1):          # skipped when T == 0
            x ~ p(x | a)                              # observed, masked by ``mask``

    guide:  a ~ q(a | X)                              # amortized, permutation invariant

The ELBO per set is ``E_q[log p(a) + sum_i m_i log p(x_i|a) - log q(a|X)] <= log p(X)``.
Subclasses supply :meth:`prior`, :meth:`likelihood`, :meth:`guide_params` and
:meth:`make_q`; this class turns them into ``model``, ``guide``, ``context_posterior``,
``sample`` and a prior simulator for training amortized guides.

References:
    [1] de Finetti, "La prevision: ses lois logiques, ses sources subjectives", 1937.
    [2] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
    [3] Zaheer et al., "Deep Sets", NeurIPS 2017.
"""

from __future__ import annotations

import logging

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor

from ppl_fewshot.models.base import FewShotModel, as_mask

logger = logging.getLogger(__name__)


def pseudo_count(g: Tensor, sharpness: float = 10.0) -> Tensor:
    """A sharp softplus ``log(1 + exp(s g)) / s``: positive, and linear for ``g >> 1/s``.

    Amortized conjugate guides add ``n * pseudo_count(g)`` to the prior's natural
    parameters. A plain softplus needs ``g -> -inf`` to reach a per-item statistic of
    zero (a feature never on in 50 items); the sharp one gets within ``1e-3`` at
    ``g = -0.5``, so the exact posterior is reachable with finite weights.
    """
    return F.softplus(g, beta=sharpness)


class SetLatentModel(FewShotModel):
    """Base class for models with a single per-set latent ``a`` and i.i.d. items given ``a``.

    Subclasses implement:

    * :meth:`prior` -- ``p(a)`` with empty batch shape (the plates broadcast it);
    * :meth:`likelihood` -- ``p(x | a)`` for ``a[..., *latent_event]`` with batch shape
      ``a``'s leading dims and event shape :attr:`event_shape`;
    * :meth:`guide_params` -- the amortized guide's parameters from ``(x, mask)``, each
      a tensor ``[B, *param_event]``;
    * :meth:`make_q` -- the guide distribution from those parameters (any batch shape).

    :attr:`param_event_dims` gives the number of trailing parameter dims of each
    parameter (default: one each), so that the guide can insert the items-plate dim.
    """

    has_set_latent = True
    #: trailing non-batch dims of each tensor returned by :meth:`guide_params`
    param_event_dims: tuple[int, ...] = ()

    # --------------------------------------------------------------- to implement
    def prior(self) -> dist.Distribution:
        """``p(a)`` with empty batch shape."""
        raise NotImplementedError

    def likelihood(self, a: Tensor) -> dist.Distribution:
        """``p(x | a)`` with batch shape ``a``'s leading dims and event shape ``event_shape``."""
        raise NotImplementedError

    def guide_params(self, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        """Parameters of ``q(a | X)``: a tuple of ``[B, *param_event]`` tensors."""
        raise NotImplementedError

    def make_q(self, params: tuple[Tensor, ...]) -> dist.Distribution:
        """``q(a | X)`` from :meth:`guide_params` output (batch shape = their leading dims)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- contract
    def model(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        with pyro.plate("sets", B, dim=-2):
            a = pyro.sample("a", self.prior())
            if T == 0:  # the empty set: Pyro plates cannot be empty
                return
            with pyro.plate("items", T, dim=-1):
                pyro.sample("x", self.likelihood(a).mask(mask), obs=x)

    def guide(self, x: Tensor, mask: Tensor | None = None, ctx: dict | None = None) -> None:
        mask = as_mask(x, mask)
        params = self.guide_params(x, mask)
        ev = self.param_event_dims or (1,) * len(params)
        params = tuple(p.unsqueeze(p.dim() - e) for p, e in zip(params, ev))
        with pyro.plate("sets", x.shape[0], dim=-2):
            pyro.sample("a", self.make_q(params))

    def context_posterior(self, context: Tensor, mask: Tensor | None = None) -> dist.Distribution:
        """The amortized ``q(a | context)``, batch shape ``[B]``; exactly order invariant (with
        an urn, of the distinct items)."""
        return self.make_q(self.guide_params(context, self.urn_split(context, mask)[0]))

    def sample_latent(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        """Draws ``a ~ q(a | context)`` as ``[B, num_samples, *latent_event]``."""
        q = self.context_posterior(context, context_mask)
        return q.sample((num_samples,)).movedim(0, 1)

    def sample(
        self, context: Tensor, num_samples: int, context_mask: Tensor | None = None
    ) -> Tensor:
        """``x' ~ p(x' | context)`` by ``a ~ q(a | context)``, ``x' ~ p(x' | a)``.

        Returns ``[B, num_samples, *event_shape]`` draws (image models override this to
        return Bernoulli means, as the contract asks).
        """
        with torch.no_grad():
            return self.likelihood(self.sample_latent(context, num_samples, context_mask)).sample()

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def set_sizes(x: Tensor, mask: Tensor | None) -> Tensor:
        """Number of real items per set as a float ``[B, 1]``."""
        return as_mask(x, mask).to(x.dtype).sum(-1, keepdim=True)

    def simulate(
        self,
        num_sets: int,
        max_items: int,
        sizes: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sets drawn from the prior: ``(x[B, T, *event], mask[B, T], a[B, *latent_event])``.

        ``sizes`` (long ``[B]``) gives each set's number of real items (the first ones);
        by default sizes are uniform on ``0..max_items``. Padded items are zeros. The
        draws use torch's global RNG (seed it with ``pyro.set_rng_seed``) unless
        ``generator`` is given for the sizes.
        """
        device = next(iter(self.buffers()), torch.zeros(())).device
        if sizes is None:
            sizes = torch.randint(0, max_items + 1, (num_sets,), generator=generator)
        sizes = sizes.to(device)
        with torch.no_grad():
            a = self.prior().sample((num_sets,))
            lead = a.shape[: a.dim() - len(self.prior().event_shape)]
            a_items = a.reshape(*lead, 1, *self.prior().event_shape)
            x = self.likelihood(a_items).expand(torch.Size([num_sets, max_items])).sample()
        mask = torch.arange(max_items, device=device)[None, :] < sizes[:, None]
        shape = (num_sets, max_items) + (1,) * (x.dim() - 2)
        x = x * mask.reshape(shape).to(x.dtype)
        return x, mask, a
