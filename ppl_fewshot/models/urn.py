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

Any model of the library takes an urn (:class:`Urn`; the settings ``urn_concentration`` and
``urn_atoms`` of ``models.build``, or ``model.set_urn``): its own model then scores the
distinct items only, in order of first appearance (a repeat is masked out), and each item adds
its urn term, ``log w_copy`` for a repeat and ``log w_new`` for a new one (:meth:`Urn.split`).
That is the urn's joint whenever a tie means a copy, i.e. up to a new atom that happens to
equal an earlier item exactly (at most e^-80 of a repeat's probability for drawings, dropped).
``log p(X)``, the NLL tables' conditionals (:func:`urn_conditionals`: no sampling spent on a
repeat), ``log_predictive``, training and ``q(c | X)`` all follow from it, for an exchangeable
set model (the Neural Statistician) and an autoregressive one (GMN) alike.

References:
    [1] Blackwell & MacQueen, "Ferguson distributions via Pólya urn schemes", Ann. Statist.
        1973.
    [2] Pitman, "Combinatorial Stochastic Processes", 2006, sections 3.1-3.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

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


def urn_conditionals(base_conditionals: Callable[[Tensor, list[int]], Tensor], x: Tensor,
                     mask: Tensor, positions: list[int], urn: Urn) -> Tensor:
    """The urn's ``log p(x_t | x_<t)`` for ``t`` in ``positions``, ``[B, len(positions)]``.

    A repeat scores ``log w_copy`` exactly; a new item scores ``log w_new`` plus the set
    model's own conditional given the distinct earlier items, ``base_conditionals(scored,
    positions)`` with ``scored`` the mask of the distinct items (e.g. importance-sampled). No
    sampling is spent on repeats, and the distinct items' conditionals have the set model's
    variance.
    """
    scored, terms = urn.split(x, mask)
    base = base_conditionals(scored, positions)
    repeat, terms = (mask & ~scored)[:, positions], terms[:, positions]
    return torch.where(repeat, terms, terms + base).masked_fill(~mask[:, positions], 0.0)


def urn_log_prob(log_base: Tensor, log_new: Tensor, log_copy: Tensor) -> Tensor:
    """``log(w_new p(x_t | ...) + w_copy)``: an item's exact log-probability under the urn,
    including a new atom that equals an earlier item (the case :meth:`Urn.split` drops; needed
    for a base measure on few values, where it is not negligible).

    ``log_base`` is the set model's log-probability of the item as a new atom (any batch shape
    that broadcasts against ``[B, T]``).
    """
    return torch.logaddexp(log_new + log_base, log_copy)


@dataclass(frozen=True)
class Urn:
    """A Pólya urn over a set's items: ``concentration`` theta (> 0, ``inf`` allowed) and
    ``atoms`` (0: a Dirichlet process; N: N atoms with Dirichlet(theta / N) weights)."""

    concentration: float
    atoms: int = 0

    def __post_init__(self) -> None:
        check_urn(self.concentration, self.atoms)

    def log_weights(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log w_new, log w_copy, repeat)`` of every item (:func:`urn_log_weights`)."""
        return urn_log_weights(x, mask, self.concentration, self.atoms)

    def split(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(scored, terms)``, each ``[B, T]``: the mask of the items the set model scores (the
        present items that repeat no earlier one) and every item's urn term, ``log w_copy``
        for a repeat and ``log w_new`` for a new item (0 when padded). Summed over a set, the
        terms are its partition's log-probability (:func:`partition_log_prob`)."""
        if x.shape[1] == 0:
            return mask, x.new_zeros(mask.shape)
        new, copy, repeat = self.log_weights(x, mask)
        return mask & ~repeat, torch.where(repeat, copy, new).masked_fill(~mask, 0.0)


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
