"""Evaluation estimators: log-marginals and the conditional NLL table.

The table of the seed talk (TARGETS.md, table 1) reports, for episodes of T = 20 items
drawn from C_test test classes,

    NLL(s) = - E_episodes[ log p(x_{s+1} | x_1, ..., x_s) ]     (nats, s = number of shots)

estimated for each episode by importance sampling with K samples from the guide
(:meth:`FewShotModel.conditional_log_likelihoods`; for models with a per-set latent
optionally nested, ``inner`` draws of every item's latents per draw of the set latent),
with the standard error taken from the spread over episodes.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ppl_fewshot.data.base import Episode
from ppl_fewshot.models import FewShotModel
from ppl_fewshot.models.annealing import AIS
from ppl_fewshot.models.posteriors import widened_guide

logger = logging.getLogger(__name__)

SHOTS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 10, 19)


def describe_estimator(num_particles: int, inner: int = 1, ais: AIS | None = None,
                       proposal_scale: float = 1.0) -> str:
    """The text that names an importance sampler in a result record and its report:
    plain (K draws from the guide), nested (``inner`` draws of each item's latents per draw
    of the set latent) or annealed (``ais``), from the guide widened by ``proposal_scale``
    (:func:`~ppl_fewshot.models.posteriors.widened_guide`) when it is not 1."""
    if inner > 1:
        text = (f"nested importance sampling, K={num_particles} samples of the set latent from "
                f"the guide x {inner} of each item's latents")
    else:
        text = f"importance sampling, K={num_particles} samples from the guide"
    if proposal_scale != 1:
        text += f" (its Normal scales x {proposal_scale:g})"
    if ais is not None and inner == 1:
        text += (f" annealed through {ais.steps} distributions ({ais.leapfrog} leapfrog steps "
                 "per HMC transition)")
    return text


def log_marginal(
    model: FewShotModel,
    x: Tensor,
    mask: Tensor | None = None,
    num_particles: int = 1000,
    chunk: int | None = None,
) -> Tensor:
    """Importance-sampled ``log p(X)`` per set (``[B]``, nats) for any model.

    ``log p(X) ~= log (1/K) sum_k p(X, h_k) / q(h_k | X)`` with ``h_k ~ q(. | X)``, the
    particles drawn ``chunk`` at a time so that large K fits in memory.
    """
    return model.log_marginal(x, mask, num_particles=num_particles, chunk=chunk)


def conditional_nll(
    model: FewShotModel,
    bank: Episode,
    num_particles: int = 1000,
    batch_size: int = 8,
    chunk: int | None = None,
    progress: bool = False,
    positions: list[int] | tuple[int, ...] | None = None,
    ais: AIS | None = None,
    inner: int = 1,
) -> Tensor:
    """``-log p(x_t | x_<t)`` for every episode and position: ``[E, T]`` in nats.

    With ``positions``, only those items are scored (each still conditioned on all the
    items before it): ``[E, len(positions)]``, and proportionally less work. ``ais``
    anneals the importance samples and ``inner`` nests them
    (:mod:`ppl_fewshot.models.annealing`).
    """
    device = next(model.parameters(), torch.zeros(())).device
    model.eval()
    rows = []
    E = bank.x.shape[0]
    for start in tqdm(range(0, E, batch_size), disable=not progress, desc="nll"):
        x = bank.x[start : start + batch_size].to(device)
        m = bank.mask[start : start + batch_size].to(device)
        with torch.no_grad():
            ll = model.conditional_log_likelihoods(
                x, m, num_particles=num_particles, chunk=chunk, positions=positions, ais=ais,
                inner=inner,
            )
        rows.append(-ll.cpu())
    return torch.cat(rows, 0)


def nll_table(
    model: FewShotModel,
    bank: Episode,
    shots: tuple[int, ...] = SHOTS,
    num_particles: int = 1000,
    batch_size: int = 8,
    progress: bool = False,
    ais: AIS | None = None,
    inner: int = 1,
    proposal_scale: float = 1.0,
) -> dict[str, Any]:
    """Mean and standard error of the conditional NLL at each number of shots
    (``ais``: annealed importance samples; ``inner``: nested ones, see
    :mod:`ppl_fewshot.models.annealing`; ``proposal_scale``: from the guide widened by it,
    :func:`~ppl_fewshot.models.posteriors.widened_guide`).

    Returns ``{"shots": [...], "nll": [...], "se": [...], "episodes": E, "num_particles": K,
    "per_episode": [[...] * len(shots)] * E}`` (the NLL of every episode and column, for
    paired comparisons of two models or estimators on the same bank), with
    ``"inner_particles"`` when ``inner > 1``.
    """
    T = bank.x.shape[1]
    bad = [s for s in shots if s >= T or s < 0]
    if bad:
        raise ValueError(f"shots {bad} need episodes longer than T={T}")
    # s shots = the item at 0-based position s, conditioned on the s items before it
    with widened_guide(model, proposal_scale):
        cols = conditional_nll(model, bank, num_particles, batch_size, progress=progress,
                               positions=list(shots), ais=ais, inner=inner)
    per_episode = [[round(float(v), 3) for v in row] for row in cols]
    nested = {"inner_particles": inner} if inner != 1 else {}
    return {**summarize_columns(cols, shots, num_particles), **nested,
            "per_episode": per_episode}


def summarize_columns(cols: Tensor, shots: tuple[int, ...] | list[int],
                      num_particles: int) -> dict[str, Any]:
    """The table of :func:`nll_table` from per-episode NLLs ``cols[E, len(shots)]``."""
    E = cols.shape[0]
    se = cols.std(0, unbiased=True) / math.sqrt(E) if E > 1 else torch.full_like(cols[0], math.nan)
    return {
        "shots": list(shots),
        "nll": [round(float(v), 3) for v in cols.mean(0)],
        "se": [round(float(v), 3) for v in se],
        "episodes": E,
        "num_particles": num_particles,
    }


def markdown_row(label: str, table: dict[str, Any], c_test: int | str = "") -> str:
    """One row in the layout of TARGETS.md table 1: ``| model | C_test | nll (se) ... |``."""
    cells = [f"{v:.1f} ({s:.1f})" for v, s in zip(table["nll"], table["se"])]
    return f"| {label} | {c_test} | " + " | ".join(cells) + " |"


def markdown_header(shots: tuple[int, ...] | list[int] = SHOTS) -> str:
    head = "| model | C_test | " + " | ".join(str(s) for s in shots) + " |"
    return head + "\n|" + "---|" * (len(shots) + 2)
