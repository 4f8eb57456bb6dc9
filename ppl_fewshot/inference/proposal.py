"""A proposal scale fitted per model: how wide the guide should draw when it is a proposal.

Every importance-sampling estimate of ``log p(x_t | x_<t)`` in this library draws from the
model's guide. A guide trained on the ELBO is narrower than the posterior (the GMNs' q(z | x, X)
has about 0.6 of its sd: ``docs/findings.md`` section 38), so the weights are heavy-tailed and
``log`` of their mean falls short of ``log p``. Inside
:func:`~ppl_fewshot.models.posteriors.widened_guide` the guide draws with every Normal scale
times ``s``; for every ``s > 0`` the mean of the K weights is still unbiased for the
conditional, so by Jensen ``E[log p_hat_s] <= log p`` and the scale with the highest mean
estimate on held-out data is the tightest proposal among those tried, **for that K** (a wider
proposal pays at large K, where the weights' tail is what is left, and loses at small K, where
fewer draws land where the posterior is: section 38).

:func:`fit_proposal_scale` scores one bank of episodes at each candidate scale with common
random numbers (the same standard-normal draws, scaled) and keeps the best;
``ppl-fewshot evaluate --proposal-scale fit`` fits on episodes of other classes than it then
reports (by default the training classes the checkpoint held out for validation), so the
choice is not made on the numbers it produces.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from ppl_fewshot.data.base import Episode
from ppl_fewshot.inference.evaluate import SHOTS, conditional_nll
from ppl_fewshot.models import FewShotModel
from ppl_fewshot.models.posteriors import widened_guide

logger = logging.getLogger(__name__)

DEFAULT_SCALES: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0)


@dataclasses.dataclass(frozen=True)
class ProposalFit:
    """The outcome of :func:`fit_proposal_scale`.

    Attributes:
        scales: the candidate scales, as given.
        nll: for each scale, ``-log p_hat(x_t | x_<t)`` averaged over the episodes and the
            scored positions (nats per item).
        paired_se: for each scale, the standard error over episodes of its per-episode
            difference from the best scale (0 for the best itself).
        best: the scale with the lowest ``nll``.
        episodes, num_particles, shots: what the fit scored: episodes, importance samples K,
            and the positions (numbers of shots).
    """

    scales: tuple[float, ...]
    nll: tuple[float, ...]
    paired_se: tuple[float, ...]
    best: float
    episodes: int
    num_particles: int
    shots: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


def fit_proposal_scale(
    model: FewShotModel,
    bank: Episode,
    scales: Sequence[float] = DEFAULT_SCALES,
    num_particles: int = 1000,
    shots: Sequence[int] = SHOTS,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> ProposalFit:
    """The guide's widening factor that gives the tightest importance-sampled conditionals.

    Scores ``-log p_hat(x_t | x_<t)`` at the positions ``shots`` of every episode of ``bank``
    with ``num_particles`` draws from the guide widened by each of ``scales``
    (:func:`~ppl_fewshot.models.posteriors.widened_guide`), every scale from the same seeded
    random numbers, and returns the scale with the lowest mean. Fit on other episodes than the
    ones you report, at the K you report with. The caller's random state is left as it was.

    Raises:
        ValueError: no scales, a scale that is not a positive finite number, or a position
            outside the bank's episodes.
    """
    scales = tuple(float(s) for s in scales)
    if not scales:
        raise ValueError("fit_proposal_scale needs at least one candidate scale")
    bad = [s for s in scales if not (0 < s < math.inf)]
    if bad:
        raise ValueError(f"proposal scales must be positive finite numbers, got {bad}")
    T = bank.x.shape[1]
    if any(s < 0 or s >= T for s in shots):
        raise ValueError(f"shots {list(shots)} need positions within episodes of T={T}")
    device = next(model.parameters(), torch.zeros(())).device
    per_scale = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for s in scales:
            torch.manual_seed(seed)  # common random numbers: each scale stretches the same draws
            with widened_guide(model, s):
                cols = conditional_nll(model, bank, num_particles, batch_size,
                                       progress=progress, positions=list(shots))
            per_scale.append(cols.mean(1))
            logger.info("proposal scale %g: %.3f nats per item", s, float(per_scale[-1].mean()))
    per = torch.stack(per_scale)  # [S, E]
    mean = per.mean(1)
    best = int(mean.argmin())
    E = per.shape[1]
    diff = per - per[best]
    se = diff.std(1) / math.sqrt(E) if E > 1 else torch.full_like(mean, math.nan)
    se[best] = 0.0
    return ProposalFit(scales=scales, nll=tuple(round(float(v), 4) for v in mean),
                       paired_se=tuple(round(float(v), 4) for v in se), best=scales[best],
                       episodes=E, num_particles=num_particles, shots=tuple(shots))
