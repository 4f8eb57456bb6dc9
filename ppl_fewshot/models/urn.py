"""A Pólya urn over a set's items: exact repeats as part of an exchangeable model.

A set latent model says ``x_1, x_2, ... ~ P_c`` i.i.d. given the set's latent ``c``; it cannot
make a drawing that repeats one already seen any cheaper than a new one. Few-shot benchmarks
do repeat drawings: the GMN authors' episodes draw 20 items *with replacement* from a
character's 20 drawings (docs/findings.md section 8). The de Finetti way to say "a set is a
sample, with replacement, from a finite or countable collection of drawings of one
character" is a random discrete measure whose atoms come from ``P_c``::

    c ~ p(c)
    G | c ~ DP(theta, P_c)                   (atoms = 0), or
    G | c = sum_j w_j delta(d_j),  d_j ~ P_c i.i.d.,  w ~ Dirichlet(theta / N, ..., theta / N)
                                             (atoms = N)
    x_1, ..., x_T | G ~ G i.i.d.

Integrating ``G`` out gives the sequential predictive (the Blackwell-MacQueen urn [1]; for N
atoms the Dirichlet-multinomial urn, a Pitman-Yor process of discount ``-theta / N`` [2])::

    p(x_t | x_<t, c) = w_new(t) p(x_t | c) + w_copy(t)
    DP:       w_new = theta / (theta + m),            w_copy = n_t / (theta + m)
    N atoms:  w_new = theta (1 - k / N) / (theta + m), w_copy = (n_t + theta / N) / (theta + m)
                                                       (0 when n_t = 0)

with ``m`` the items before ``t``, ``k`` the distinct ones among them and ``n_t`` how many of
them equal ``x_t`` exactly. ``theta = inf`` with N atoms is sampling uniformly with replacement
from N drawings (``w_copy = 1 / N``, ``w_new = 1 - k / N``), the authors' sampler with
N = 20; ``theta = inf`` without atoms never repeats (the plain model). The joint is
exchangeable and factorizes as ``p(X | c) = EPPF(partition of X) * prod_j p(d_j | c)`` over the
distinct items ``d_j`` (:func:`partition_log_prob`): repeats say nothing about ``c``, and
``theta`` is fitted from the partitions of training sets alone (:func:`fit_concentration`).

For the DP the counting by equal items is exact for any ``P_c``; with N atoms it assumes
that two atoms never draw the same item (true in practice for 784-pixel drawings).

In a Pyro model the observed site is :class:`UrnMixture` (the Neural Statistician's
``urn_concentration``); :func:`urn_conditionals` (through the mixin :class:`UrnConditionals`)
computes the conditionals of an NLL table with no sampling spent on repeats.

References:
    [1] Blackwell & MacQueen, "Ferguson distributions via Pólya urn schemes", Ann. Statist.
        1973.
    [2] Pitman, "Combinatorial Stochastic Processes", 2006, sections 3.1-3.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor

from ppl_fewshot.models.base import as_mask, query_sets

NEG = -1e30  # stands for log 0 where gradients pass (logaddexp of two -inf is NaN)


def check_urn(concentration: float, atoms: int) -> None:
    """Refuse settings that define no urn: ``concentration > 0`` (``inf`` allowed), atoms >= 0."""
    if not concentration > 0:
        raise ValueError(f"the urn's concentration must be > 0 (or inf), got {concentration}")
    if atoms < 0 or int(atoms) != atoms:
        raise ValueError(f"the urn's atoms must be a count >= 0 (0: a Dirichlet process), "
                         f"got {atoms}")


def earlier_copies(x: Tensor, mask: Tensor) -> Tensor:
    """``[B, T, T]``: entry ``[b, t, s]`` is true when item ``s < t`` is present and equals item
    ``t`` exactly. ``x[B, T, *event]``, ``mask[B, T]``."""
    T = mask.shape[-1]
    flat = x.flatten(2)
    before = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1)  # [t, s]: s < t
    return before & mask.unsqueeze(-2) & (flat.unsqueeze(2) == flat.unsqueeze(1)).all(-1)


def repeat_counts(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Counts of the urn from the items themselves: ``(m, k, n)``, each ``[B, T]`` long.

    ``m[b, t]`` present items before ``t``; ``k`` the distinct ones among them; ``n`` how
    many of them equal ``x[b, t]`` exactly. ``x[B, T, *event]``, ``mask[B, T]``.
    """
    T = mask.shape[-1]
    before = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1)
    seen = before & mask.unsqueeze(-2)  # [B, t, s]
    n = earlier_copies(x, mask).sum(-1)
    first = mask & (n == 0)
    return seen.sum(-1), (seen & first.unsqueeze(-2)).sum(-1), n


def urn_log_weights(x: Tensor, mask: Tensor, concentration: float,
                    atoms: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """``(log w_new, log w_copy, repeat)``, each ``[B, T]``, of the items of ``x[B, T, ...]``.

    ``log w_copy`` is :data:`NEG` where the item repeats nothing; ``repeat`` marks the items
    equal to an earlier present item. Padded items get ``log w_new = 0`` (they are masked).
    """
    check_urn(concentration, atoms)
    m, k, n = (v.to(x.dtype) for v in repeat_counts(x, mask))
    repeat = mask & (n > 0)
    theta, neg = concentration, torch.full_like(m, NEG)
    if math.isinf(theta):
        if atoms:
            log_new = torch.log1p(-k / atoms).clamp_min(NEG)
            log_copy = torch.where(repeat, torch.full_like(m, -math.log(atoms)), neg)
        else:
            log_new, log_copy = torch.zeros_like(m), neg
    else:
        log_norm = torch.log(theta + m)
        share = 1 - k / atoms if atoms else torch.ones_like(m)
        log_new = (math.log(theta) + torch.log(share) - log_norm).clamp_min(NEG)
        copies = n + (theta / atoms if atoms else 0.0)
        log_copy = torch.where(repeat, torch.log(copies.clamp_min(1e-30)) - log_norm, neg)
    return log_new.masked_fill(~mask, 0.0), log_copy, repeat


def query_urn_weights(query: Tensor, context: Tensor, context_mask: Tensor, concentration: float,
                      atoms: int = 0) -> tuple[Tensor, Tensor]:
    """``(log w_new, log w_copy)``, each ``[B, Q]``, of each query ``[B, Q, *event]`` taken
    as the next item after its set's ``context[B, Tc, *event]`` (mask ``[B, Tc]``)."""
    new, copy, _ = urn_log_weights(*query_sets(query, context, context_mask), concentration,
                                   atoms)
    return new[:, -1].reshape(query.shape[:2]), copy[:, -1].reshape(query.shape[:2])


def urn_conditionals(base_conditionals: Callable[[Tensor, list[int]], Tensor], x: Tensor,
                     mask: Tensor, positions: list[int], concentration: float,
                     atoms: int = 0) -> Tensor:
    """The urn's ``log p(x_t | x_<t)`` for ``t`` in ``positions``, ``[B, len(positions)]``.

    A repeat scores ``log w_copy`` exactly (the share of a new atom equal to it, ``w_new p(x_t |
    ...)``, is at most e^-80 of it for drawings, and dropped); a new item scores ``log w_new``
    plus the set model's own conditional given the distinct earlier items,
    ``base_conditionals(distinct_mask, positions)`` (e.g. importance-sampled). No sampling is
    spent on repeats, and the distinct items' conditionals have the set model's variance.
    """
    new, copy, repeat = urn_log_weights(x, mask, concentration, atoms)
    base = base_conditionals(mask & ~repeat, positions)
    out = torch.where(repeat[:, positions], copy[:, positions], new[:, positions] + base)
    return out.masked_fill(~mask[:, positions], 0.0)


def urn_log_prob(log_base: Tensor, log_new: Tensor, log_copy: Tensor) -> Tensor:
    """``log(w_new p(x_t | ...) + w_copy)``: an item's log-density under the urn.

    ``log_base`` is the set model's log-density of the item as a new atom (any batch shape
    that broadcasts against ``[B, T]``, e.g. ``[K, B, T]`` over particles).
    """
    return torch.logaddexp(log_new + log_base, log_copy)


def partition_log_prob(counts: Sequence[int], concentration: float, atoms: int = 0) -> float:
    """Exchangeable partition probability of one set whose distinct items occur ``counts``
    times (in order of first appearance): the urn's joint divided by ``prod_j p(d_j | c)``.

    DP: ``k log theta + lgamma(theta) - lgamma(theta + n) + sum_j lgamma(n_j)`` (Ewens);
    N atoms: ``log N! / (N - k)! + lgamma(theta) - lgamma(theta + n)
    + sum_j [lgamma(n_j + a) - lgamma(a)]`` with ``a = theta / N`` (``-inf`` when k > N).
    """
    check_urn(concentration, atoms)
    n, k, theta = sum(counts), len(counts), concentration
    if atoms and k > atoms:
        return -math.inf
    if math.isinf(theta):
        if atoms:  # uniform draws with replacement from N items
            return math.lgamma(atoms + 1) - math.lgamma(atoms - k + 1) - n * math.log(atoms)
        return 0.0 if all(c == 1 for c in counts) else -math.inf
    out = math.lgamma(theta) - math.lgamma(theta + n)
    if atoms:
        a = theta / atoms
        out += math.lgamma(atoms + 1) - math.lgamma(atoms - k + 1)
        return out + sum(math.lgamma(c + a) - math.lgamma(a) for c in counts)
    return out + k * math.log(theta) + sum(math.lgamma(c) for c in counts)


def set_partition(x: Tensor) -> list[int]:
    """How often each distinct item of one set ``x[T, *event]`` occurs, in order of first
    appearance (exact equality, :func:`earlier_copies`)."""
    same = earlier_copies(x.unsqueeze(0), x.new_ones(1, x.shape[0], dtype=torch.bool))[0]
    first = ~same.any(-1)  # [t, s] -> the first occurrences; column j counts j's later copies
    return (1 + same.sum(0))[first].tolist()


def fit_concentration(partitions: Iterable[Sequence[int]], atoms: int = 0,
                      bounds: tuple[float, float] = (1e-3, 1e6)) -> float:
    """Maximum-likelihood ``theta`` of the urn from the partitions of training sets.

    The partition term of ``log p(X)`` does not involve the set model, so this is the exact
    empirical-Bayes estimate whatever ``P_c`` is. Golden-section search over ``log theta``
    within ``bounds``; the upper bound is returned when the likelihood still rises there
    (e.g. N atoms and sets drawn uniformly with replacement: ``theta = inf``).
    """
    parts = [list(p) for p in partitions]
    if not parts:
        raise ValueError("fit_concentration needs at least one partition")

    def nll(log_theta: float) -> float:
        return -sum(partition_log_prob(p, math.exp(log_theta), atoms) for p in parts)

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


class UrnMixture(TorchDistribution):
    """The urn's density of observed items: ``log(w_new p_base(x) + w_copy)`` per item.

    ``base`` is the set model's distribution of an item as a new atom; ``log_new`` and
    ``log_copy`` (:func:`urn_log_weights`) were computed from the very items this scores, so
    :meth:`log_prob` is only meaningful for them (an observed site). Sampling is refused: a
    set model with an urn draws new atoms from ``base`` (copies are the context's items).
    """

    arg_constraints: dict = {}

    def __init__(self, base: TorchDistribution, log_new: Tensor, log_copy: Tensor) -> None:
        self.base, self.log_new, self.log_copy = base, log_new, log_copy
        batch = torch.broadcast_shapes(base.batch_shape, log_new.shape, log_copy.shape)
        super().__init__(batch, base.event_shape, validate_args=False)

    @property
    def support(self):  # type: ignore[override]
        return self.base.support

    def expand(self, batch_shape, _instance=None) -> UrnMixture:
        return UrnMixture(self.base.expand(batch_shape), self.log_new, self.log_copy)

    def log_prob(self, value: Tensor) -> Tensor:
        return urn_log_prob(self.base.log_prob(value), self.log_new, self.log_copy)

    def sample(self, sample_shape: torch.Size | None = None) -> Tensor:
        raise NotImplementedError("an urn's observed site scores items; draw new items from "
                                  "the set model (its sample method)")


class UrnConditionals:
    """Mixin for a :class:`~ppl_fewshot.models.base.FewShotModel` with an urn (attributes
    ``urn_concentration``, ``None`` for none, and ``urn_atoms``; its model and guide apply the
    urn): ``conditional_log_likelihoods``, hence the NLL tables and ``log_predictive``, by
    :func:`urn_conditionals`, the model's own estimator (urn off) on the distinct items."""

    urn_concentration: float | None
    urn_atoms: int

    def conditional_log_likelihoods(self, x: Tensor, mask: Tensor | None = None,
                                    num_particles: int = 1000, chunk: int | None = None,
                                    positions: list[int] | tuple[int, ...] | None = None,
                                    ais=None, inner: int = 1) -> Tensor:
        plain = super().conditional_log_likelihoods  # type: ignore[misc]
        theta = self.urn_concentration
        if theta is None or x.shape[1] == 0:
            return plain(x, mask, num_particles, chunk, positions, ais, inner)
        mask = as_mask(x, mask)
        pos = list(range(x.shape[1]) if positions is None else positions)

        def base(distinct: Tensor, pos: list[int]) -> Tensor:
            self.urn_concentration = None
            try:
                return plain(x, distinct, num_particles, chunk, pos, ais, inner)
            finally:
                self.urn_concentration = theta

        return urn_conditionals(base, x, mask, pos, theta, self.urn_atoms)
