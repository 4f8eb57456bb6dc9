"""Exchangeability of a sequentially factorized model, measured.

An exchangeable model gives ``log p(X)`` independent of the order of X's items. Models that
factorize ``p(X) = prod_t p(x_t | x_<t)`` (Generative Matching Networks, the one-shot CVAE)
do not guarantee it; :func:`exchangeability_spread` reports how far a trained one is.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppl_fewshot.models import FewShotModel
from ppl_fewshot.models.base import as_mask


def exchangeability_spread(
    model: FewShotModel,
    x: Tensor,
    num_permutations: int = 10,
    num_particles: int = 100,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    same_order: bool = False,
) -> Tensor:
    """Std over random item orders of ``log p(X) = sum_t log p(x_t | x_<t)``, per set ``[B]``.

    An exchangeable model gives the same ``log p(X)`` in every order; GMN's sequential
    factorization does not guarantee it, so the spread (in nats, importance sampling
    with ``num_particles`` per conditional) measures how far the trained model is from
    exchangeable. It includes the Monte Carlo noise of the estimator, so it is not zero
    even for an exchangeable model at finite ``num_particles``; ``same_order=True``
    measures that noise alone: the same ``num_permutations`` estimates, each in the given
    order. For a model with exact conditionals (``pixel-beta-bernoulli``) both are 0 up to
    rounding; an order spread well above the same-order one is the model's own.

    Args:
        x: sets ``[B, T, *event_shape]``; ``mask``: ``[B, T]`` real items (padding stays
            padding in every order).
        generator: draws the orders (the estimates' particles use torch's global RNG).
    """
    mask = as_mask(x, mask)
    B, T = x.shape[:2]
    totals = []
    for _ in range(num_permutations):
        perm = (torch.arange(T) if same_order else torch.randperm(T, generator=generator)
                ).to(x.device)
        xp, mp = x[:, perm], mask[:, perm]
        ll = model.conditional_log_likelihoods(xp, mp, num_particles)
        totals.append((ll * mp).sum(-1))
    lp = torch.stack(totals, 0)  # [P, B]
    if num_permutations < 2:
        return torch.zeros(B, dtype=lp.dtype, device=lp.device)
    return lp.std(0)
