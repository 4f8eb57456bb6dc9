"""Permutation-invariant, mask-aware set encoders (mean, attention and Gaussian product pooling).

A set encoder maps per-item features ``h[..., B, T, D]`` and a mask ``[B, T]`` to one
vector per set ``[..., B, out_dim]``. Padded items never influence the result, the
order of items never matters (exactly: pooling is a masked sum), and the set size
enters as a feature ``log(1 + n)`` so that an encoder can tell one item from twenty.
The empty set (``n = 0``) is legal and gives a learned constant, so a guide built on
it returns a prior-like answer (:class:`SetEncoder`). :class:`GaussianProductEncoder` instead
returns a Gaussian's ``(loc, scale)``: the prior ``N(0, I)`` times one Gaussian factor per
item, so the set size enters through precisions that add up, and the empty set gives the
prior exactly.

References:
    [1] Zaheer et al., "Deep Sets", NeurIPS 2017.
    [2] Lee et al., "Set Transformer", ICML 2019 (pooling by multihead attention).
    [3] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
    [4] Volpp et al., "Bayesian Context Aggregation for Neural Processes", ICLR 2021.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ppl_fewshot.nn.conv import MLP


def sorted_sum(t: Tensor, dim: int) -> Tensor:
    """Sum along ``dim`` after sorting it, so the result is bit-for-bit independent of order.

    A plain float sum depends on the order of its terms in the last bits; summing each
    feature's values in sorted order makes set pooling exactly permutation invariant.
    """
    return torch.sort(t, dim=dim).values.sum(dim)


def masked_mean(h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of ``h[..., B, T, D]`` over the items where ``mask[B, T]`` is True.

    Returns ``(mean [..., B, D], count [B, 1])``; the mean of an empty set is zero.
    Exactly invariant to the order of the items (see :func:`sorted_sum`).
    """
    m = mask.to(h.dtype).unsqueeze(-1)  # [B, T, 1]
    n = m.sum(-2)  # [B, 1]
    return sorted_sum(h * m, -2) / n.clamp(min=1.0), n


class SetEncoder(nn.Module):
    """``phi`` per item, masked pooling, ``rho`` after pooling: ``rho(pool(phi(h)), log(1+n))``.

    Args:
        in_dim: per-item feature size.
        out_dim: per-set output size.
        hidden: width of the item and post-pooling networks.
        pooling: ``"mean"`` (DeepSets / Neural Statistician) or ``"attention"``
            (a learned query attends over the items, Set Transformer's PMA with one seed).
        num_heads: heads for attention pooling.
        norm: normalization before the hidden activations of the item and post-pooling
            networks: ``"none"``, ``"layer"`` (per item and per set: nothing couples the
            sets) or ``"batch"`` (see :func:`ppl_fewshot.nn.conv._norm`).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 256,
        pooling: str = "mean",
        num_heads: int = 4,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "attention"):
            raise ValueError(f"unknown pooling {pooling!r}; use 'mean' or 'attention'")
        if pooling == "attention" and hidden % num_heads:
            raise ValueError("hidden must be divisible by num_heads")
        self.pooling = pooling
        self.num_heads = num_heads
        self.phi = MLP(in_dim, [hidden], hidden, norm)
        self.rho = MLP(hidden + 1, [hidden], out_dim, norm)
        if pooling == "attention":
            self.query = nn.Parameter(torch.randn(hidden) / math.sqrt(hidden))
            self.key = nn.Linear(hidden, hidden)
        self.empty = nn.Parameter(torch.zeros(hidden))

    def pool(self, e: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Pool item embeddings ``e[..., B, T, H]`` to ``[..., B, H]``; also return counts."""
        if self.pooling == "mean":
            pooled, n = masked_mean(e, mask)
        else:
            H, nh = e.shape[-1], self.num_heads
            k = self.key(e).reshape(*e.shape[:-1], nh, H // nh)  # [..., B, T, nh, d]
            q = self.query.reshape(nh, H // nh)
            logits = (k * q).sum(-1) / math.sqrt(H // nh)  # [..., B, T, nh]
            logits = logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            top = logits.amax(-2, keepdim=True).clamp(min=-1e30)  # finite for empty sets
            ex = torch.exp(logits - top)  # order-free softmax: sorted sums only
            w = ex / sorted_sum(ex, -2).unsqueeze(-2).clamp(min=1e-30)
            v = e.reshape(*e.shape[:-1], nh, H // nh)
            pooled = sorted_sum(w.unsqueeze(-1) * v, -3).reshape(*e.shape[:-2], H)
            n = mask.to(e.dtype).sum(-1, keepdim=True)
        empty = (n == 0).to(e.dtype)  # [B, 1]
        pooled = pooled * (1 - empty) + self.empty * empty
        return pooled, n

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        """``h[..., B, T, in_dim]``, ``mask[B, T]`` -> ``[..., B, out_dim]``."""
        pooled, n = self.pool(self.phi(h), mask.bool())
        size = torch.log1p(n).expand(*pooled.shape[:-1], 1)
        return self.rho(torch.cat([pooled, size], -1))


def gaussian_product(loc: Tensor, precision: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``N(0, I) * prod_t N(loc_t, 1 / precision_t)``, normalized: the posterior's loc and scale.

    ``loc, precision [..., B, T, D]`` are per-item Gaussian factors (diagonal), ``mask [B, T]``
    marks the items present. The product of the standard normal prior with the present factors
    is the Gaussian with precision ``1 + sum_t precision_t`` and loc ``sum_t precision_t loc_t /
    (1 + sum_t precision_t)``: the exact posterior of ``c ~ N(0, I)`` given observations
    ``loc_t ~ N(c, 1 / precision_t)``. Returns ``(loc, scale) [..., B, D]``; the empty set gives
    ``(0, 1)``, the prior. Exactly invariant to the order of the items (:func:`sorted_sum`).
    """
    w = precision * mask.to(precision.dtype).unsqueeze(-1)
    total = 1.0 + sorted_sum(w, -2)
    return sorted_sum(w * loc, -2) / total, total.rsqrt()


class GaussianProductEncoder(nn.Module):
    """``q(c | X) = N(0, I) * prod_t N(c; r(h_t), 1 / lambda(h_t))``, normalized ([4]).

    Each item contributes a diagonal Gaussian factor over ``c`` (a loc ``r`` and a precision
    ``lambda = softplus(.)`` from one network), and the factors multiply the prior
    (:func:`gaussian_product`). The structure is the exact posterior's when each item's
    likelihood in ``c`` is Gaussian: the precision adds up with the count, so the
    information in ``q(c | X)`` grows with the set (about ``D/2 log n`` nats) instead of
    being whatever one post-pooling network learned for the set sizes it saw. The empty set
    gives the prior exactly. The output is ``(loc, scale)``, not raw parameters.

    Args:
        in_dim: per-item feature size.
        out_dim: ``D``, the size of ``c``.
        hidden: width of the two hidden layers of the factor network.
        norm: normalization of the hidden layers (see :class:`SetEncoder`).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, norm: str = "none") -> None:
        super().__init__()
        self.factor = MLP(in_dim, [hidden, hidden], 2 * out_dim, norm)

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``h[..., B, T, in_dim]``, ``mask[B, T]`` -> ``(loc, scale) [..., B, out_dim]``."""
        r, raw = self.factor(h).chunk(2, -1)
        return gaussian_product(r, F.softplus(raw), mask.bool())


def sample_dropout(mask: Tensor, p: float) -> Tensor:
    """"Sample dropout" ([3]): drop each present item of ``mask[..., T]`` with probability
    ``p``, keeping at least one item of every non-empty set."""
    keep = mask & (torch.rand(mask.shape, device=mask.device) >= p)
    lost = mask.any(-1) & ~keep.any(-1)  # sets that dropout would empty
    if lost.any():
        score = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, -1.0)
        one = F.one_hot(score.argmax(-1), mask.shape[-1]).bool()
        keep = keep | (one & lost.unsqueeze(-1))
    return keep
