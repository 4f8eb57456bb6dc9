"""Do few-shot samples draw the context's class? A judge model and a copy distance.

A conditional NLL says how well a model scores a real new drawing; it says nothing about
what ``sample`` draws (a Generative Matching Network can score well and sample generic
characters, docs/findings.md section 10). These diagnostics look at the samples:

* :func:`judge_classes` -- a second, independently trained model with a per-set latent (a
  Neural Statistician) classifies each sample N-way among reference sets, by the smallest
  ``KL(q(c | X_k) || q(c | {x}))`` (Edwards & Storkey 2017, section 5.2, in the direction
  that classifies best in our runs);
* :func:`sample_fidelity` -- the fraction of samples the judge gives to the class of the
  context they were drawn from, with a Wilson interval. Judge a real held-out drawing of
  the same class for the ceiling, and samples drawn without a context for the floor;
* :func:`copy_distance` -- how far each sample is from its nearest context item (the
  fraction of differing pixels), which tells new drawings from copies;
* :func:`sample_diversity` -- how far the samples of one context are from each other,
  which tells varied drawings from one drawing repeated.

Compare both distances with those of real drawings of the class: a sampler that gains
fidelity by giving up variety (e.g. a temperature below 1) shows it there.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ppl_fewshot.inference.classify import FewShotTasks, min_kl_scores, wilson_interval
from ppl_fewshot.models import FewShotModel

logger = logging.getLogger(__name__)


def judge_classes(
    judge: FewShotModel, items: Tensor, references: Tensor, candidates: Tensor
) -> Tensor:
    """The judge's class of every item: ``[E, S]`` indices into the columns of ``candidates``.

    Args:
        judge: a model with ``context_posterior(x[B, T, *event])`` returning ``q(c | X)``
            with batch ``[B]`` in a family with a registered KL (e.g. a Neural
            Statistician); scored by :func:`ppl_fewshot.inference.classify.min_kl_scores`.
        items: ``[E, S, *event]``, S items (samples) for each of E episodes.
        references: ``[N, K, *event]``, a reference set of K items for each of N classes.
        candidates: long ``[E, W]``: the W reference sets among which the items of episode
            e are classified (column 0 is usually the episode's own class).
    """
    if not hasattr(judge, "context_posterior"):
        raise TypeError(f"the judge needs context_posterior (a set-latent model), got {judge!r}")
    E, S = items.shape[:2]
    if candidates.dim() != 2 or candidates.shape[0] != E:
        raise ValueError(f"candidates must be [E={E}, W], got {tuple(candidates.shape)}")
    if candidates.numel() and not 0 <= int(candidates.min()) <= int(candidates.max()) < len(
        references
    ):
        raise ValueError(f"candidates index {len(references)} reference sets; out of range")
    tasks = FewShotTasks(
        support=references[candidates],  # [E, W, K, *event]
        query=items,
        labels=torch.zeros(E, S, dtype=torch.long),
        classes=candidates,
    )
    return min_kl_scores(judge, tasks, reverse=True).argmax(-1)


def sample_fidelity(
    judge: FewShotModel, items: Tensor, references: Tensor, candidates: Tensor
) -> dict[str, Any]:
    """Fraction of ``items`` that the judge gives to column 0 of ``candidates``, with a 95%
    Wilson interval: ``{"fidelity", "interval", "items"}`` (see :func:`judge_classes`)."""
    hits = judge_classes(judge, items, references, candidates) == 0
    n, k = hits.numel(), int(hits.sum())
    lo, hi = wilson_interval(k, n)
    return {"fidelity": k / n if n else float("nan"), "interval": [lo, hi], "items": n}


def _pixel_distances(a: Tensor, b: Tensor) -> Tensor:
    """Fractions of differing pixels ``[E, S, T]``, ``a[E, S, *event]``, ``b[E, T, *event]``."""
    return (a.flatten(2).unsqueeze(2) != b.flatten(2).unsqueeze(1)).float().mean(-1)


def copy_distance(items: Tensor, context: Tensor) -> Tensor:
    """Per item, the fraction of pixels in which it differs from its nearest context item.

    ``items[E, S, *event]`` and ``context[E, T, *event]`` (binary) -> ``[E, S]``; 0 means
    a copy of a context item.
    """
    if context.shape[1] == 0:
        raise ValueError("copy_distance needs at least one context item")
    return _pixel_distances(items, context).min(-1).values


def sample_diversity(items: Tensor) -> Tensor:
    """Per episode, the mean fraction of differing pixels over all pairs of its items.

    ``items[E, S, *event]`` (binary, ``S >= 2``) -> ``[E]``; 0 means S copies of one item.
    """
    S = items.shape[1]
    if S < 2:
        raise ValueError(f"sample_diversity needs at least 2 items per episode, got {S}")
    return _pixel_distances(items, items).sum((-1, -2)) / (S * (S - 1))
