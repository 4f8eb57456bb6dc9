"""Simulation-based calibration (SBC) and interval coverage of the amortized guides: q(c | X) on
sets simulated from the prior, and q(z | x, X) of a new item given a real context.

A guide that equals the posterior is calibrated on average over the prior [1]::

    c* ~ p(c),  X ~ p(X | c*),  c_1..c_L ~ q(c | X)
    rank = #{l : c_l < c*}  ~  Uniform{0, ..., L}      (per latent dim)

so the histogram of ranks over many simulated sets is flat, and a central credible
interval of level ``l`` of ``q(c | X)`` contains ``c*`` with probability ``l``. An
overconfident guide (too narrow) piles ranks at 0 and L and under-covers; a biased guide
tilts the histogram; an underconfident one piles ranks in the middle and over-covers.
Passing SBC is necessary, not sufficient: the prior itself passes (ranks flat, coverage
nominal) while ignoring the data.

The model must be able to simulate ``(c*, X)`` pairs from its prior:
``model.simulate(num_sets, max_items, sizes) -> (x, mask, c*)``, as the conjugate set
models of :mod:`ppl_fewshot.models.conjugate` do.

References:
    [1] Talts, Betancourt, Simpson, Vehtari & Gelman, "Validating Bayesian inference
        algorithms with simulation-based calibration", arXiv:1804.06788, 2018.
    [2] Cook, Gelman & Rubin, "Validation of software for Bayesian models using
        posterior quantiles", JCGS 15(3), 2006.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

from ppl_fewshot.utils import private_rng

logger = logging.getLogger(__name__)


def simulate_and_draw(
    model, num_sets: int, set_size: int, num_draws: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Prior simulations and guide draws: ``(truth [N, L], draws [S, N, L])``.

    ``N = num_sets`` sets of ``set_size`` items each are simulated with ``c* ~ p(c)``,
    ``X ~ p(X | c*)``; then ``S = num_draws`` draws of ``q(c | X)`` are taken per set.
    The latent's event dims are flattened into ``L``. Uses a private copy of torch's RNG
    seeded with ``seed`` (the global RNG is left as it was).
    """
    if not getattr(model, "has_set_latent", False) or not hasattr(model, "simulate"):
        raise TypeError(
            f"model {getattr(model, 'name', type(model).__name__)!r} cannot simulate "
            "(c, X) pairs with a per-set latent; SBC needs model.simulate and q(c|X)"
        )
    if num_sets < 1 or num_draws < 1 or set_size < 0:
        raise ValueError(
            f"need num_sets >= 1, num_draws >= 1, set_size >= 0; got "
            f"{num_sets}, {num_draws}, {set_size}"
        )
    device = next(iter(model.buffers()), torch.zeros(())).device
    with torch.no_grad(), private_rng(seed, device):
        sizes = torch.full((num_sets,), int(set_size), dtype=torch.long, device=device)
        x, mask, truth = model.simulate(num_sets, int(set_size), sizes=sizes)
        draws = model.context_posterior(x, mask).sample((num_draws,))
    return truth.reshape(num_sets, -1), draws.reshape(num_draws, num_sets, -1)


def sbc_ranks(model, num_sets: int, set_size: int, num_draws: int = 99, seed: int = 0) -> Tensor:
    """SBC rank statistics of the true latent among ``num_draws`` guide draws [1].

    Returns a long tensor ``[num_sets, L]`` with values in ``0..num_draws``: per simulated
    set and latent dim, the number of draws of ``q(c | X)`` below the true ``c*``. For a
    calibrated guide each column is uniform on ``0..num_draws`` (test it with
    :func:`rank_uniformity_pvalues`; plot a histogram with ``num_draws + 1`` divisible
    into equal bins). Choose ``num_draws + 1`` with many divisors (99, 199, 999).
    """
    truth, draws = simulate_and_draw(model, num_sets, set_size, num_draws, seed)
    return (draws < truth.unsqueeze(0)).sum(0)


def _default_bins(num_ranks: int, num_sets: int) -> int:
    """The largest divisor of ``num_ranks`` that keeps >= 5 expected counts per bin (<= 20)."""
    cap = max(2, min(20, num_sets // 5))
    return max(d for d in range(1, cap + 1) if num_ranks % d == 0)


def rank_uniformity_pvalues(ranks: Tensor, num_draws: int, bins: int | None = None) -> Tensor:
    """Chi-square p-values of "ranks are uniform on ``0..num_draws``", per latent dim ``[L]``.

    Ranks are grouped into ``bins`` equal bins (``bins`` must divide ``num_draws + 1``;
    by default the largest divisor <= 20 that keeps five expected counts per bin) and
    Pearson's statistic is compared with a chi-square on ``bins - 1`` degrees of freedom.
    Small p-values (say < 0.01) mean the guide is miscalibrated. Expect one dim in
    ``1/alpha`` to fall below ``alpha`` by chance.
    """
    ranks = ranks.reshape(ranks.shape[0], -1).long()
    num_ranks = num_draws + 1
    if ranks.numel() and (ranks.min() < 0 or ranks.max() > num_draws):
        raise ValueError(f"ranks outside 0..{num_draws}")
    bins = bins or _default_bins(num_ranks, ranks.shape[0])
    if bins < 2 or num_ranks % bins:
        raise ValueError(f"bins={bins} must be >= 2 and divide num_draws + 1 = {num_ranks}")
    which = ranks // (num_ranks // bins)  # [N, L] in 0..bins-1
    counts = torch.stack(
        [torch.bincount(which[:, j], minlength=bins) for j in range(which.shape[1])], 1
    ).to(torch.float64)  # [bins, L]
    expected = ranks.shape[0] / bins
    stat = ((counts - expected) ** 2 / expected).sum(0)
    # chi-square survival function: Q(df/2, stat/2), the regularized upper gamma
    return torch.special.gammaincc(torch.tensor((bins - 1) / 2.0, dtype=torch.float64), stat / 2)


def interval_coverage(
    model,
    num_sets: int,
    set_size: int,
    levels: Sequence[float] = (0.5, 0.9),
    num_draws: int = 1000,
    seed: int = 0,
) -> dict[float, Tensor]:
    """Empirical coverage of central credible intervals of ``q(c | X)`` for the true ``c*``.

    For each level ``l``, the interval between the ``(1 - l)/2`` and ``(1 + l)/2``
    quantiles of ``num_draws`` guide draws is formed per simulated set and latent dim;
    the coverage is the fraction of ``num_sets`` sets whose true ``c*`` lies inside.
    A calibrated guide covers ``l`` up to the binomial error
    ``sqrt(l (1 - l) / num_sets)`` (plus the small quantile error of finite draws).

    Returns:
        ``{level: coverage [L]}``, float64 tensors, one entry per latent dim.
    """
    _check_levels(levels)
    return _coverage(*simulate_and_draw(model, num_sets, set_size, num_draws, seed), levels)


def _coverage(truth: Tensor, draws: Tensor, levels: Sequence[float]) -> dict[float, Tensor]:
    """Coverage per latent dim of the central intervals of ``draws[S, N, L]`` for ``truth``."""
    draws, truth = draws.to(torch.float64), truth.to(torch.float64)
    out: dict[float, Tensor] = {}
    for lv in levels:
        q = torch.tensor([(1 - lv) / 2, (1 + lv) / 2], dtype=torch.float64)
        lo, hi = torch.quantile(draws, q, dim=0)  # [N, L] each
        out[float(lv)] = ((truth >= lo) & (truth <= hi)).to(torch.float64).mean(0)
        logger.debug("coverage at %.2f: %s", lv, out[float(lv)].tolist())
    return out


def _check_levels(levels: Sequence[float]) -> None:
    for lv in levels:
        if not 0.0 < float(lv) < 1.0:
            raise ValueError(f"levels must lie in (0, 1), got {lv}")


# ------------------------------------------------- a new item's latents given a real context
def simulate_queries_and_draw(
    model, context: Tensor, num_sims: int, num_draws: int, context_mask: Tensor | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """SBC for ``q(z | x, X)`` on a given context: ``(truth [N, L], draws [S, N, L])``.

    For each set of ``context`` (real drawings, say), ``num_sims`` new items are drawn from the
    model's own program given the set, ``z* ~ p(z | X)``, ``x ~ p(x | z*, X)``
    (:func:`~ppl_fewshot.models.posteriors.simulate_queries`: models without a per-set
    latent), then ``S = num_draws`` draws of the guide's ``q(z | x, X)``
    (:meth:`~ppl_fewshot.models.FewShotModel.query_posteriors`). ``N = B * num_sims``; the
    per-item latent sites are concatenated (event dims flattened) into ``L``. A guide equal to
    the posterior gives uniform ranks *for each context* [1], so this checks the amortized
    posterior where the few-shot estimators use it, not only on average over the prior.
    Seeded with private copies of torch's RNG.
    """
    from ppl_fewshot.models.posteriors import simulate_queries

    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    latents, x = simulate_queries(model, context, num_sims, context_mask, seed=seed)
    posts = model.query_posteriors(x, context, context_mask, seed=seed + 1)
    with torch.no_grad(), private_rng(seed + 2, x.device):
        draws = [posts[k].sample((num_draws,)).reshape(num_draws, x.shape[0] * num_sims, -1)
                 for k in latents]
    truth = [v.reshape(x.shape[0] * num_sims, -1) for v in latents.values()]
    return torch.cat(truth, -1), torch.cat(draws, -1)


def query_sbc_ranks(model, context: Tensor, num_sims: int, num_draws: int = 99,
                    context_mask: Tensor | None = None, seed: int = 0) -> Tensor:
    """SBC ranks ``[B * num_sims, L]`` of ``z*`` among ``num_draws`` draws of ``q(z | x, X)``
    for new items simulated given each set of ``context``
    (:func:`simulate_queries_and_draw`); test them with :func:`rank_uniformity_pvalues`."""
    truth, draws = simulate_queries_and_draw(model, context, num_sims, num_draws, context_mask,
                                             seed)
    return (draws < truth.unsqueeze(0)).sum(0)


def query_interval_coverage(
    model, context: Tensor, num_sims: int, levels: Sequence[float] = (0.5, 0.9),
    num_draws: int = 1000, context_mask: Tensor | None = None, seed: int = 0,
) -> dict[float, Tensor]:
    """Coverage of ``z*`` by the central intervals of ``q(z | x, X)``, per latent dim ``[L]``,
    for new items simulated given each set of ``context`` (as :func:`interval_coverage`)."""
    _check_levels(levels)
    truth, draws = simulate_queries_and_draw(model, context, num_sims, num_draws, context_mask,
                                             seed)
    return _coverage(truth, draws, levels)


__all__ = [
    "interval_coverage",
    "query_interval_coverage",
    "query_sbc_ranks",
    "rank_uniformity_pvalues",
    "sbc_ranks",
    "simulate_and_draw",
    "simulate_queries_and_draw",
]
