"""The ArviZ adapter: draws of the amortized posteriors q(c | X) and q(z | x, X) as InferenceData.

For a model with a per-set latent ``c`` (DESIGN.md section 3), the guide gives
``q(c | X)`` for every set of a batch in one pass. This module draws from it and wraps
the draws in :class:`arviz.InferenceData` so that ArviZ's summaries and plots apply::

    idata = context_posterior_to_inference_data(model, context)
    az.summary(idata, kind="stats")          # mean, sd, HDI per set and latent dim
    az.plot_posterior(idata, coords={"set": [0]})
    az.hdi(idata, hdi_prob=0.9)

The posterior group holds one variable (``"c"`` by default) with dims
``(chain, draw, set, latent)``: one chain of independent draws, one entry per set of
the batch, and the latent's event dims flattened into ``latent``. Draws are i.i.d., so
ArviZ's ESS is about the number of draws and R-hat is undefined (one chain: a plain
``az.summary`` logs a shape warning and reports ``r_hat`` as NaN).

References:
    [1] Kumar, Carroll, Hartikainen & Martin, "ArviZ a unified library for exploratory
        analysis of Bayesian models in Python", JOSS 4(33), 2019.
    [2] Edwards & Storkey, "Towards a Neural Statistician", ICLR 2017.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ppl_fewshot.utils import private_rng

logger = logging.getLogger(__name__)


def context_posterior_draws(
    model, context: Tensor, num_samples: int = 1000, mask: Tensor | None = None, seed: int = 0
) -> Tensor:
    """Draws of ``q(c | context)`` as ``[num_samples, B, L]`` (event dims flattened to L).

    Uses a private copy of torch's RNG seeded with ``seed``; the global RNG is left as it
    was. Raises :class:`TypeError` for a model without a per-set latent.
    """
    if not getattr(model, "has_set_latent", False):
        raise TypeError(
            f"model {getattr(model, 'name', type(model).__name__)!r} has no per-set latent: "
            "there is no context posterior q(c|X) to convert"
        )
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    with torch.no_grad(), private_rng(seed, context.device):
        q = model.context_posterior(context, mask)
        draws = q.sample((num_samples,))
    B = context.shape[0]
    if tuple(q.batch_shape) != (B,):
        raise ValueError(f"context posterior has batch shape {tuple(q.batch_shape)}, not ({B},)")
    return draws.reshape(num_samples, B, -1)


def context_posterior_to_inference_data(
    model,
    context: Tensor,
    num_samples: int = 1000,
    mask: Tensor | None = None,
    seed: int = 0,
    var_name: str = "c",
    set_names: list[Any] | None = None,
):
    """Draws of the amortized ``q(c | context)`` as an :class:`arviz.InferenceData`.

    Args:
        model: a model with a per-set latent (``model.has_set_latent``).
        context: the sets ``[B, T, *event_shape]`` (``T = 0`` gives the prior).
        num_samples: draws per set.
        mask: boolean ``[B, T]``, or None for all items present.
        seed: seed of the draws (the global RNG is not touched).
        var_name: the posterior variable's name.
        set_names: coordinates of the ``set`` dim (default ``0..B-1``).

    Returns:
        ``InferenceData`` whose ``posterior`` group has ``var_name`` with dims
        ``(chain=1, draw=num_samples, set=B, latent=L)``.

    Raises:
        TypeError: the model has no per-set latent.
    """
    import arviz as az  # lazily: importing ArviZ takes seconds

    draws = context_posterior_draws(model, context, num_samples, mask, seed)
    S, B, L = draws.shape
    coords = {
        "set": list(range(B)) if set_names is None else list(set_names),
        "latent": list(range(L)),
    }
    if len(coords["set"]) != B:
        raise ValueError(f"{len(coords['set'])} set names for {B} sets")
    values = draws.detach().to(torch.float64).cpu().numpy()[None]  # [1, S, B, L]
    return az.from_dict(
        posterior={var_name: values},
        coords=coords,
        dims={var_name: ["set", "latent"]},
        attrs={
            "model": str(getattr(model, "name", type(model).__name__)),
            "source": "amortized context posterior q(c|X)",
        },
    )


def query_posterior_to_inference_data(
    model,
    query: Tensor,
    context: Tensor,
    num_samples: int = 1000,
    context_mask: Tensor | None = None,
    seed: int = 0,
    set_names: list[Any] | None = None,
):
    """Draws of the guide's posteriors of each query's latents given the context, as an
    :class:`arviz.InferenceData`: ``q(z | x, X)`` of every per-item site and ``q(c | X u {x})``
    of every per-set site (:meth:`~ppl_fewshot.models.FewShotModel.query_posteriors`).

    Args:
        model: any :class:`~ppl_fewshot.models.FewShotModel`.
        query: ``[B, Q, *event_shape]``, each query beside the context on its own.
        context: ``[B, Tc, *event_shape]`` (``Tc = 0``: what the guide believes of a lone item).
        num_samples: draws per set and query.
        context_mask: boolean ``[B, Tc]``, or None for all items present.
        seed: seeds the guide pass and the draws (the global RNG is not touched).
        set_names: coordinates of the ``set`` dim (default ``0..B-1``).

    Returns:
        ``InferenceData`` whose ``posterior`` group has one variable per latent site, with dims
        ``(chain=1, draw=num_samples, set=B, query=Q, <site>_dim=L)`` (event dims flattened).
    """
    import arviz as az

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    posts = model.query_posteriors(query, context, context_mask, seed=seed)
    B, Q = query.shape[:2]
    with torch.no_grad(), private_rng(seed, query.device):
        draws = {k: q.sample((num_samples,)).reshape(num_samples, B, Q, -1)
                 for k, q in posts.items()}
    coords: dict[str, list[Any]] = {
        "set": list(range(B)) if set_names is None else list(set_names), "query": list(range(Q))}
    if len(coords["set"]) != B:
        raise ValueError(f"{len(coords['set'])} set names for {B} sets")
    dims = {}
    for k, d in draws.items():
        coords[f"{k}_dim"] = list(range(d.shape[-1]))
        dims[k] = ["set", "query", f"{k}_dim"]
    return az.from_dict(
        posterior={k: d.detach().to(torch.float64).cpu().numpy()[None] for k, d in draws.items()},
        coords=coords, dims=dims,
        attrs={"model": str(getattr(model, "name", type(model).__name__)),
               "source": "amortized posteriors of the queries' latents given the context"},
    )


__all__ = ["context_posterior_draws", "context_posterior_to_inference_data",
           "query_posterior_to_inference_data"]
