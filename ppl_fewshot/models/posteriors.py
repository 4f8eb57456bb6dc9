"""The guide's posteriors of a new item's latents given a context, as distributions.

Every model's guide is an amortized posterior over the latents of a set: ``q(c | X)`` for
the set latent, ``q(z_t | x_t, ...)`` for each item. Few-shot questions ask about one new
item ``x`` beside a context ``X``: what does the model believe about the latents of ``x``
once it has seen ``X``? For each query this module runs the guide on the set
``X u {x}`` (the query last, as :meth:`~ppl_fewshot.models.FewShotModel.log_predictive`
scores it) and returns, for every latent sample site, the guide's distribution of that
site for the query:

* per-item sites (``z``): ``q(z | x, X)`` of the query item; for the Generative Matching
  Network and the one-shot CVAE this is exactly the proposal behind ``log p(x | X)``, for
  a VAE it ignores ``X``;
* per-set sites (``c``, ``a``): ``q(c | X u {x})``, the context posterior once ``x`` joins
  the set (``model.context_posterior(X)`` is the one before);
* sites the guide draws *given* earlier draws (the Neural Statistician's ``z`` given ``c``,
  a lower ``z`` layer given the one above) are returned at the guide's draw of those
  (``q(z | x, c)`` at one ``c ~ q(c | X u {x})``), which ``seed`` makes repeatable.

Each distribution has batch shape ``[B, Q]`` (sets, queries) and the site's event shape,
so it can be sampled, scored and summarized like any torch distribution, and
:func:`~ppl_fewshot.diagnostics.query_posterior_to_inference_data` turns its draws into
ArviZ ``InferenceData``.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import Tensor
from torch.distributions.utils import lazy_property

from ppl_fewshot.models.particles import query_sets
from ppl_fewshot.utils import private_rng

logger = logging.getLogger(__name__)


def query_posteriors(
    model, query: Tensor, context: Tensor, context_mask: Tensor | None = None,
    seed: int | None = None,
) -> dict[str, dist.Distribution]:
    """The guide's distribution of every latent site for each query, given the context.

    Args:
        model: a :class:`~ppl_fewshot.models.FewShotModel`.
        query: new items ``[B, Q, *event]``, each scored on its own beside the context.
        context: ``[B, Tc, *event]``; ``Tc = 0`` (no context) is legal.
        context_mask: boolean ``[B, Tc]``; masked context items are absent.
        seed: seeds the guide's draws (only sites drawn given earlier draws depend on
            them) with a private copy of torch's RNG; None uses the global one.

    Returns:
        ``{site name: distribution}`` in the guide's order, each with batch shape ``[B, Q]``.
        The model is evaluated in eval mode (no sample dropout); its mode is restored.

    Raises:
        ValueError: ``query`` and ``context`` disagree in their sets or item shapes.
        TypeError: a guide site's distribution has no batch :func:`index_batch` can index
            (a torch distribution with tensor parameters, ``Independent`` or masked, has).
    """
    trace = _trace_queries(model, model.guide, query, context, context_mask, seed)
    B, Q, Tc = query.shape[0], query.shape[1], context.shape[1]
    out = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        fn = _unmask(site["fn"])
        batch = tuple(fn.batch_shape)
        if len(batch) < 2 or batch[0] != B * Q or batch[1] not in (1, Tc + 1):
            raise TypeError(f"site {name!r} has batch shape {batch}; expected [{B * Q}, 1] "
                            f"(a per-set site) or [{B * Q}, {Tc + 1}] (a per-item site)")
        at = batch[1] - 1  # the query (last item) of a per-item site, the set of a per-set one
        out[name] = index_batch(fn, lambda p, i=at: p[:, i].reshape(B, Q, *p.shape[2:]))
    return out


def simulate_queries(
    model, context: Tensor, num: int, context_mask: Tensor | None = None,
    seed: int | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """``num`` new items per set from the model's own program given the context, with the
    latents that made them: ``({site: [B, num, *latent event]}, x [B, num, *event])``.

    Each new item is the next item of the set ``X u {x}`` drawn by the model program with its
    observation unconditioned (``pyro.poutine.uncondition``): for a model without a per-set
    latent (GMN, CVAE, VAE) these are exact draws of ``z ~ p(z | X)``, ``x ~ p(x | z, X)``,
    the pairs that simulation-based calibration of ``q(z | x, X)`` needs
    (:func:`~ppl_fewshot.diagnostics.query_sbc_ranks`). ``x`` is a draw (binary for
    Bernoulli pixels), not a mean. Only per-item latent sites are returned.

    Raises:
        TypeError: the model has a per-set latent: its program draws ``c`` from the prior, not
            from ``p(c | X)``, so it cannot simulate a new item given a context this way.
    """
    if getattr(model, "has_set_latent", False):
        raise TypeError(f"model {model.name!r} has a per-set latent; its program cannot draw a "
                        "new item given a context (use diagnostics.sbc_ranks on simulated sets)")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    B, Tc = context.shape[:2]
    placeholder = context.new_zeros(B, num, *model.event_shape)
    trace = _trace_queries(model, poutine.uncondition(model.model), placeholder, context,
                           context_mask, seed)
    latents, x = {}, None
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        v = site["value"]
        if v.dim() < 2 or v.shape[0] != B * num or v.shape[1] != Tc + 1:
            continue  # not a per-item site
        v = v[:, Tc].reshape(B, num, *v.shape[2:])
        if name == "x":
            x = v
        else:
            latents[name] = v
    if x is None:
        raise TypeError(f"model {model.name!r} has no per-item observed site 'x'")
    return latents, x


@contextmanager
def widened_guide(model, scale: float) -> Iterator[None]:
    """Within the block, the guide's Normal sites (``Normal``, ``MultivariateNormal``, inside
    ``Independent`` and masks) draw with their scales multiplied by ``scale``; other families
    are left as they are. ``scale = 1`` changes nothing.

    Every importance-sampling estimator (``log_marginal``, ``conditional_log_likelihoods``,
    ``log_predictive``, likelihood classification, PSIS, the start of AIS) draws from
    ``model.guide`` and scores the draws under the same trace, so within the block they use
    the wider proposal and stay unbiased for ``p(X)``. A guide narrower than the posterior (a
    simulation-based calibration of ``q(z | x, X)`` says so: :func:`~ppl_fewshot.diagnostics.
    query_sbc_ranks`) gives heavy-tailed weights; widening it toward the posterior's width
    lowers their variance, and with it the downward bias of ``log`` of their mean.
    ``query_posteriors`` returns the widened proposal; ``features`` and
    ``context_posterior`` (the networks' outputs) are not affected.

    Raises:
        ValueError: ``scale`` is not a positive number.
    """
    if not (isinstance(scale, (int, float)) and 0 < scale < math.inf):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if scale == 1:
        yield
        return
    had = "guide" in model.__dict__
    before = model.__dict__.get("guide")
    inner = model.guide

    def guide(*args, **kwargs):
        return _Widen(float(scale))(inner)(*args, **kwargs)

    object.__setattr__(model, "guide", guide)
    try:
        yield
    finally:
        if had:
            object.__setattr__(model, "guide", before)
        else:
            object.__delattr__(model, "guide")


class _Widen(Messenger):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def _pyro_sample(self, msg) -> None:
        if not msg["is_observed"] and not site_is_subsample(msg):
            msg["fn"] = _widen(msg["fn"], self.scale)


def _widen(fn: dist.Distribution, s: float) -> dist.Distribution:
    if isinstance(fn, MaskedDistribution):
        return _widen(fn.base_dist, s).mask(fn._mask)
    if isinstance(fn, torch.distributions.Independent):
        return dist.Independent(_widen(fn.base_dist, s), fn.reinterpreted_batch_ndims)
    if isinstance(fn, torch.distributions.Normal):
        return dist.Normal(fn.loc, fn.scale * s)
    if isinstance(fn, torch.distributions.MultivariateNormal):
        return dist.MultivariateNormal(fn.loc, scale_tril=fn.scale_tril * s)
    return fn


def _trace_queries(model, program, query: Tensor, context: Tensor,
                   context_mask: Tensor | None, seed: int | None):
    """Trace ``program(x, mask)`` on one set per query (its context, then the query), in eval
    mode (restored after), without gradients, seeded with a private RNG when ``seed`` is set."""
    from ppl_fewshot.models.base import as_mask

    ev = tuple(model.event_shape)
    if query.dim() != 2 + len(ev) or tuple(query.shape[2:]) != ev:
        raise ValueError(f"query must be [B, Q, *{ev}], got {tuple(query.shape)}")
    if tuple(context.shape[2:]) != ev or context.shape[0] != query.shape[0]:
        raise ValueError(f"context must be [{query.shape[0]}, Tc, *{ev}], got "
                         f"{tuple(context.shape)}")
    xs, ms = query_sets(query, context.to(query), as_mask(context, context_mask))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), private_rng(seed, query.device):
            return poutine.trace(program).get_trace(xs, ms)
    finally:
        model.train(was_training)


def _broadcast(p: Tensor, batch: tuple[int, ...]) -> Tensor:
    """A parameter expanded to ``batch`` + its own trailing (event) dims."""
    extra = p.shape[len(batch):] if p.dim() >= len(batch) else ()
    return p.expand(*batch, *extra)


def _unmask(fn: dist.Distribution) -> dist.Distribution:
    while isinstance(fn, MaskedDistribution):
        fn = fn.base_dist
    return fn


def index_batch(fn: dist.Distribution, index: Callable[[Tensor], Tensor]) -> dist.Distribution:
    """``fn`` rebuilt with ``index`` applied to every parameter its constructor takes, each
    first broadcast to the batch shape (one of alternative parameterizations, such as probs /
    logits). ``index`` must act on the batch dims only, e.g. ``lambda p: p[idx]`` for a batch
    ``[B]``. Masks are dropped; ``Independent`` is kept.

    Raises:
        TypeError: ``fn`` has no tensor parameters to index (a mixture, say).
    """
    fn = _unmask(fn)
    if isinstance(fn, torch.distributions.Independent):
        return dist.Independent(index_batch(fn.base_dist, index), fn.reinterpreted_batch_ndims)
    names = [k for k in inspect.signature(type(fn).__init__).parameters
             if k not in ("self", "validate_args")]
    lazy = [k for k in names if isinstance(getattr(type(fn), k, None), lazy_property)]
    if len(lazy) > 1:  # alternative parameterizations (probs / logits, covariance / scale_tril):
        given = [k for k in lazy if k in fn.__dict__] or lazy  # the one it was made with
        names = [k for k in names if k not in lazy or k == given[0]]
    names = [k for k in names if isinstance(getattr(fn, k, None), Tensor)]
    if not names or isinstance(fn, torch.distributions.MixtureSameFamily):
        raise TypeError(f"cannot index the batch of a {type(fn).__name__} distribution")
    batch = tuple(fn.batch_shape)
    params = {k: index(_broadcast(getattr(fn, k), batch)) for k in names}
    try:
        return type(fn)(**params, validate_args=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot rebuild a {type(fn).__name__} distribution from "
                        f"{sorted(params)}: {err}") from err


__all__ = ["index_batch", "query_posteriors", "simulate_queries", "widened_guide"]
