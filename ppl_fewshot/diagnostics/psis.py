"""Pareto-smoothed importance sampling (PSIS) diagnostics of a model's importance sampler.

Every NLL the library reports is an importance-sampling estimate with the amortized
guide as proposal::

    w_k = p(X, h_k) / q(h_k | X),   h_k ~ q(h | X),   k = 1..K
    log p(X) ~= logsumexp_k log w_k - log K

The estimate is only as good as the tail of the weight distribution. PSIS [1] fits a
generalized Pareto distribution to the largest weights; its shape ``k-hat`` says how
many finite moments the weights have (about ``1 / k-hat``) and so whether the estimate
can be trusted at all. The effective sample size ``1 / sum_k wbar_k^2`` of the
normalized weights ``wbar`` [2] says how many of the K particles carry the estimate.

Reading k-hat (thresholds of [1], section 3):

* ``k-hat < 0.5``: finite variance; the estimate converges quickly -- good;
* ``0.5 <= k-hat <= 0.7``: finite mean, infinite variance; PSIS still usable -- ok;
* ``k-hat > 0.7``: the estimate is unreliable at any practical K (the guide misses
  posterior mass); do not report the NLL without a better proposal.

The sample-size-dependent threshold of [1] is ``min(1 - 1/log10(K), 0.7)``; it is
returned as ``khat_threshold``. A proposal that equals the posterior gives constant
weights, for which no tail exists: k-hat is then reported as ``-inf``.

References:
    [1] Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto smoothed importance sampling",
        JMLR 25(72), 2024.
    [2] Kong, "A note on importance sampling using standardized weights", Tech. report
        348, University of Chicago, 1992.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
from torch import Tensor

from ppl_fewshot.models.annealing import AIS, check_inner
from ppl_fewshot.models.particles import (
    auto_chunk,
    check_positions,
    particles_in_chunks,
    prefix_lengths,
    prefix_pairs,
)

logger = logging.getLogger(__name__)

#: log-weights whose spread (max - min) is below this many rounding units of their
#: dtype, relative to their size, are treated as constant (an exact proposal gives
#: spreads of about 5-7 units in float32 with the conjugate models)
_CONSTANT_ULPS = 256


def pareto_khat(log_weights: Tensor) -> Tensor:
    """PSIS Pareto shape ``k-hat`` of log-weights ``[K, B]`` per set, ``[B]`` (float64).

    Uses :func:`arviz.psislw` (samples on the last axis, log-weights as they are: it
    smooths the *right* tail of the weights). Sets whose weights are constant up to
    rounding (an exact proposal) get ``-inf``; sets with a NaN or infinite weight, or
    with all weights zero, get ``inf``. ArviZ's warnings become debug log records.
    """
    import arviz as az  # lazily: importing ArviZ takes seconds

    eps = torch.finfo(log_weights.dtype).eps
    lw = log_weights.detach().to(torch.float64).cpu().numpy().T  # [B, K]
    if lw.shape[1] < 2:
        raise ValueError("PSIS needs at least two particles")
    # zero weights (-inf) are legal; NaN, +inf or all-zero weights are not
    finite = ~(np.isnan(lw) | np.isposinf(lw)).any(axis=1) & np.isfinite(lw).any(axis=1)
    spread = lw.max(axis=1) - lw.min(axis=1)
    scale = np.maximum(1.0, np.abs(lw).max(axis=1))
    constant = finite & (spread <= _CONSTANT_ULPS * eps * scale)
    khat = np.full(lw.shape[0], -np.inf)
    todo = ~constant & finite
    if todo.any():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, k = az.psislw(lw[todo], reff=1.0)
        for w in caught:
            logger.debug("arviz.psislw: %s", w.message)
        khat[todo] = np.asarray(k, dtype=np.float64)
    khat[~finite] = np.inf
    return torch.from_numpy(khat)


def effective_sample_size(log_weights: Tensor) -> Tensor:
    """``1 / sum_k wbar_k^2`` of the self-normalized weights, per set ``[B]`` (float64).

    Ranges from 1 (one particle carries everything) to K (all weights equal) [2].
    """
    lw = log_weights.detach().to(torch.float64)
    wbar = torch.softmax(lw, dim=0)
    return 1.0 / (wbar**2).sum(0)


def khat_threshold(num_particles: int) -> float:
    """The sample-size-dependent k-hat threshold ``min(1 - 1/log10(K), 0.7)`` of [1]."""
    if num_particles <= 10:
        return 0.0
    return min(1.0 - 1.0 / math.log10(num_particles), 0.7)


def importance_log_weights(
    model,
    x: Tensor,
    mask: Tensor | None = None,
    num_particles: int = 1000,
    chunk: int | None = None,
    ais: AIS | None = None,
    inner: int = 1,
) -> Tensor:
    """``model.log_weights`` for ``num_particles`` particles, ``[K, B]``, in chunks, no grad.

    ``chunk`` particles per call (default :func:`~ppl_fewshot.models.particles.auto_chunk`,
    divided by ``inner``); ``ais`` anneals them and ``inner`` nests them
    (:mod:`ppl_fewshot.models.annealing`): the weights are then those of the set latent.
    With an urn the model weighs the distinct items, and the urn's exact terms are added.
    """
    mask, terms = model.urn_split(x, mask)
    with torch.no_grad():
        lw = particles_in_chunks(lambda k: model.log_weights(x, mask, k, ais=ais, inner=inner),
                                 num_particles, chunk or max(1, auto_chunk(x) // inner))
    return lw + terms.sum(-1)


def importance_diagnostics(
    model,
    x: Tensor,
    mask: Tensor | None = None,
    num_particles: int = 1000,
    chunk: int | None = None,
    ais: AIS | None = None,
) -> dict[str, Tensor | int | float]:
    """PSIS diagnostics of the importance sampler behind ``model.log_marginal``.

    Draws ``num_particles`` importance weights ``log p(X, h) - log q(h | X)`` per set
    with the model's guide as proposal (``chunk`` particles per call, no gradients).

    Args:
        model: any :class:`~ppl_fewshot.models.base.FewShotModel`.
        x: a batch of sets ``[B, T, *event_shape]``.
        mask: boolean ``[B, T]``, or None for all items present.
        num_particles: K.
        chunk: particles per call of ``model.log_weights`` (default: ``auto_chunk``).
        ais: anneal the guide's draws first (diagnoses the annealed estimator instead).

    Returns:
        A dict with, per set (``[B]`` tensors, float64):

        * ``log_marginal``: ``logsumexp_k log w_k - log K``, the estimate of ``log p(X)``;
        * ``khat``: PSIS Pareto shape; ``< 0.5`` good, ``0.5-0.7`` ok, ``> 0.7``
          unreliable (``-inf`` for constant weights, i.e. an exact proposal);
        * ``ess``: effective sample size ``1 / sum wbar^2`` in ``[1, K]``;

        and ``num_particles`` (K) and ``khat_threshold`` (``min(1 - 1/log10 K, 0.7)``).
    """
    raw = importance_log_weights(model, x, mask, num_particles, chunk, ais)
    khat = pareto_khat(raw)  # from the raw dtype: its rounding unit decides "constant"
    lw = raw.to(torch.float64)
    log_marginal = torch.logsumexp(lw, 0) - math.log(num_particles)
    ess = effective_sample_size(lw)
    threshold = khat_threshold(num_particles)
    n_bad = int((khat > 0.7).sum())
    if n_bad:
        logger.info(
            "%d of %d sets have PSIS k-hat > 0.7: their log p(X) estimates are unreliable",
            n_bad,
            khat.numel(),
        )
    return {
        "log_marginal": log_marginal,
        "khat": khat,
        "ess": ess,
        "num_particles": num_particles,
        "khat_threshold": threshold,
    }


def conditional_importance_diagnostics(
    model,
    x: Tensor,
    mask: Tensor | None = None,
    positions: list[int] | tuple[int, ...] = (0, 1, 2, 3, 4, 5, 10, 19),
    num_particles: int = 1000,
    ais: AIS | None = None,
    inner: int = 1,
) -> dict[str, Tensor]:
    """PSIS k-hat and ESS of the estimates behind an NLL table, ``log p(x_t | x_<t)``.

    For models without a per-set latent (GMN, VAE, one-shot CVAE) these are the per-item
    weights ``p(x_t, z_t | x_<t) / q(z_t | x_t, x_<t)`` of each asked position; for
    set-latent models the conditional is ``log p(x_<=t) - log p(x_<t)``, and the worse
    (larger k-hat, smaller ESS) of the two prefix estimates is reported. ``ais``
    diagnoses the annealed weights instead, ``inner`` the nested ones (one weight per draw
    of the set latent).

    Returns ``{"khat": [B, P], "ess": [B, P]}`` (float64, padded items NaN; with an urn also
    the repeats, which are scored exactly, and the new items' weights are the model's own
    given the distinct earlier items).
    """
    mask = model.urn_split(x, mask)[0]
    pos = check_positions(positions, x.shape[1])
    B, P = x.shape[0], len(pos)
    check_inner(model, inner)
    with torch.no_grad():
        if not model.has_set_latent:  # the weights behind conditional_log_likelihoods
            lw = model.conditional_log_weights(x, mask, pos, num_particles, ais=ais)
            khat = pareto_khat(lw.reshape(num_particles, -1)).reshape(B, P)
            ess = effective_sample_size(lw.reshape(num_particles, -1)).reshape(B, P)
        else:  # the prefixes behind it, each estimated once (log p(empty set) = 0 exactly)
            before, upto = prefix_pairs(mask, pos)
            kt = torch.full((B, x.shape[1] + 1), -math.inf, dtype=torch.float64)
            et = torch.full((B, x.shape[1] + 1), float(num_particles), dtype=torch.float64)
            for n in prefix_lengths(before, upto):
                lw = importance_log_weights(model, x[:, :n], mask[:, :n], num_particles,
                                            ais=ais, inner=inner)
                kt[:, n], et[:, n] = pareto_khat(lw), effective_sample_size(lw).cpu()
            b, u = before.cpu(), upto.cpu()
            khat = torch.maximum(kt.gather(1, b), kt.gather(1, u))
            ess = torch.minimum(et.gather(1, b), et.gather(1, u))
    pad = ~mask[:, pos].cpu()
    return {"khat": khat.masked_fill(pad, math.nan), "ess": ess.masked_fill(pad, math.nan)}


def summarize_khat(khat: Tensor, threshold: float = 0.7) -> dict[str, list[float]]:
    """Per column of ``khat[B, P]``: the median k-hat and the share of estimates above
    ``threshold`` (NaN entries, i.e. padded items, ignored)."""
    med, frac = [], []
    for col in khat.T:
        col = col[~torch.isnan(col)]
        med.append(round(float(col.median()), 3) if col.numel() else math.nan)
        frac.append(round(float((col > threshold).double().mean()), 3) if col.numel()
                    else math.nan)
    return {"median": med, "share_above_threshold": frac, "threshold": threshold}


__all__ = [
    "conditional_importance_diagnostics",
    "effective_sample_size",
    "importance_diagnostics",
    "importance_log_weights",
    "khat_threshold",
    "pareto_khat",
    "summarize_khat",
]
