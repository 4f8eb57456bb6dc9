"""The ELBO of each set, split by sample site: how many nats each latent holds.

For a model/guide pair, ``-ELBO(X) = sum_sites E_q[log q(site | ...) - log p(site | ...)]
+ sum_observed E_q[-log p(x | ...)]``. The term of a latent site is its KL from the model's
conditional prior, averaged over the guide's draws of its parents: the *rate* the guide
spends on that latent [2], e.g. KL(q(c | X) || p(c)) for the Neural Statistician's context
and KL(q(z | x, c) || p(z | c)) summed over the items for its item latents. The observed
sites' terms are the *distortion*. Reading them by set size shows what the guide's context
holds: for an exchangeable model the whole fall of the conditional NLL from 0 shots to "the
character is known" is the KL of the exact posterior over the set latent (``sum_t -log p(x_t
| x_<t) = -log p(X) = E_{p(c|X)}[-log p(X | c)] + KL(p(c | X) || p(c))``), of which the
guide's KL is the amortized view (docs/findings.md section 32).

References:
    [1] Hoffman & Johnson, "ELBO surgery: yet another way to carve up the variational
        evidence lower bound", NIPS workshop on Advances in Approximate Bayesian Inference,
        2016.
    [2] Alemi et al., "Fixing a broken ELBO", ICML 2018.
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from ppl_fewshot.models import FewShotModel


def _sample_sites(trace: poutine.Trace) -> list[tuple[str, dict]]:
    """The trace's sample sites, without the plates' subsample sites."""
    return [(name, site) for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site_is_subsample(site)]


def elbo_terms(
    model: FewShotModel, x: Tensor, mask: Tensor | None = None, num_particles: int = 10,
    per_item: bool = False,
) -> dict[str, Tensor]:
    """``-ELBO`` of each set by sample site, in nats per set: ``{site: [B]}``.

    A latent site's term is ``E_q[log q - log p]`` (its KL from the model's conditional
    prior, a Monte Carlo estimate over ``num_particles`` draws of the guide), an observed
    site's ``E_q[-log p]``; each is summed over the site's items in a set (padded items,
    ``mask`` False, count 0). The terms add up to the set's ``-ELBO``. Guide sites come first,
    in the guide's order, then the observed ones; with an urn (``model.urn``) the sites score
    the distinct items and a last term ``"urn"`` holds the urn's ``-sum_t log w`` (exact:
    ``-log`` of the partition's probability). The model is scored in evaluation mode (no
    sample dropout, running batch-norm statistics) and put back in its mode afterwards.

    ``per_item=True`` keeps the items apart: ``{site: [B, T]}`` (padded items 0), for models
    whose every site is per item. For a sequential model (GMN, CVAE) item ``t``'s terms are
    those of its conditional ``log p(x_t | x_<t)``: its rate and distortion at ``t`` shots
    on a one-character set.

    Args:
        x: sets ``[B, T, *event_shape]``; ``mask``: ``[B, T]`` real items.
        num_particles: draws of the guide averaged per term (>= 1).
        per_item: one term per item, ``[B, T]``, instead of per set.

    Raises:
        ValueError: ``num_particles < 1``, a site that is not per set (its log-density has
            no leading dimension of size ``B``), with ``per_item`` a site that is not per
            item (e.g. the Neural Statistician's context ``c``, shape ``[B]``), or a latent
            site in only one of model and guide.
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    mask, urn_terms = model.urn_split(x, mask)
    B = x.shape[0]
    training = model.training
    model.eval()
    totals: dict[str, Tensor] = {}
    try:
        with torch.no_grad():
            ctx = model.prepare(x, mask)
            for _ in range(num_particles):
                guide_tr = poutine.trace(model.guide).get_trace(x, mask, ctx)
                model_tr = poutine.trace(poutine.replay(model.model, trace=guide_tr)).get_trace(
                    x, mask, ctx)
                terms: dict[str, Tensor] = {}
                for name, site in _sample_sites(guide_tr):
                    if name not in model_tr.nodes:
                        raise ValueError(f"guide site {name!r} is not in the model")
                    terms[name] = site["fn"].log_prob(site["value"])
                for name, site in _sample_sites(model_tr):
                    lp = site["fn"].log_prob(site["value"])
                    if site["is_observed"]:
                        terms[name] = -lp
                    elif name in terms:
                        terms[name] = terms[name] - lp
                    else:
                        raise ValueError(f"latent site {name!r} of the model is not in the guide")
                for name, term in terms.items():
                    if term.dim() == 0 or term.shape[0] != B:
                        raise ValueError(
                            f"site {name!r} is not per set: log-density shape {tuple(term.shape)}"
                            f", expected a leading dimension of {B}")
                    if per_item and term.shape != mask.shape:
                        raise ValueError(
                            f"site {name!r} is not per item: log-density shape "
                            f"{tuple(term.shape)}, expected {tuple(mask.shape)}")
                    term = term if per_item else term.reshape(B, -1).sum(-1)
                    totals[name] = totals.get(name, 0.0) + term
    finally:
        model.train(training)
    out = {name: total / num_particles for name, total in totals.items()}
    if model.urn is None:
        return out
    return {**out, "urn": -urn_terms if per_item else -urn_terms.sum(-1)}
