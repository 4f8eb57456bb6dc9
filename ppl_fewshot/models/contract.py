"""Check a model against the contract of DESIGN.md section 3, e.g. a model of your own.

Every estimator, the trainer, the urn and the diagnostics rely on a few properties of a
model's program that Pyro does not check. :func:`check_model` measures each of them on a
batch of sets ``x[B, T, *event_shape]`` and says which hold:

``sites``
    the guide samples the model's latent sites, no more and no fewer, and the model
    observes its items (``x``);
``masked-as-absent``
    a set whose items are masked out has the model's and the guide's densities of the set
    without them, for the same latent values (exact, whatever values the masked items'
    latents take): padding and the urn (:mod:`ppl_fewshot.models.urn`) rely on it;
``sample``, ``sample-empty-context``
    ``sample(context, S)`` is ``[B, S, *event_shape]`` and finite, for a context of two items
    and for the empty one (a model without a 0-shot distribution may refuse the empty context
    with a ``ValueError``: "n/a");
``estimators``
    ``log_marginal`` is ``[B]`` and finite, and equals the sum of
    ``conditional_log_likelihoods`` (the chain rule) within importance-sampling noise; masked
    items' conditionals are 0; ``log_predictive`` is ``[B, Q]`` and finite;
``exchangeable-posterior``
    (models with a per-set latent) ``q(c | X)`` does not depend on the order of ``X``;
``query-posteriors``
    ``query_posteriors(query, context)`` gives one distribution per latent site with batch
    shape ``[B, Q]`` and finite densities, the same whether or not the context carries a
    masked-out item;
``rebuild``
    ``build(model.name, **model.config())`` with the model's weights gives the same importance
    weights: a checkpoint (:func:`ppl_fewshot.inference.model_from_checkpoint`) rebuilds it.

The draws are seeded, and the caller's random state (python, numpy, torch) is restored after.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from pyro.util import get_rng_state, set_rng_state
from torch import Tensor

from ppl_fewshot.models.base import FewShotModel

logger = logging.getLogger(__name__)


class ContractError(AssertionError):
    """A model breaks the contract; the message lists every failed check."""


@dataclasses.dataclass
class ContractReport:
    """The outcome of :func:`check_model`.

    Attributes:
        results: check name -> ``"ok"``, ``"n/a: why"`` or the failure's description.
        measured: numbers behind the checks (nats), e.g. the chain rule's largest gap.
    """

    results: dict[str, str]
    measured: dict[str, float]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def failures(self) -> dict[str, str]:
        return {k: r for k, r in self.results.items() if not (r == "ok" or r.startswith("n/a"))}


def _latents(trace) -> dict[str, Any]:
    """The latent sample sites of a trace (plates' subsample sites left out)."""
    return {n: s for n, s in trace.nodes.items()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)}


def _log_density(fn: Callable, x: Tensor, mask: Tensor | None, values: dict[str, Tensor]
                 ) -> Tensor:
    tr = poutine.trace(poutine.condition(fn, data=values)).get_trace(x, mask)
    return tr.log_prob_sum()


def _check_sites(model: FewShotModel, x: Tensor) -> str:
    with torch.no_grad():
        guide = poutine.trace(model.guide).get_trace(x)
        prog = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    lat_g, lat_m = set(_latents(guide)), set(_latents(prog))
    if lat_g != lat_m:
        return f"guide samples {sorted(lat_g)}, model {sorted(lat_m)}"
    observed = [n for n, s in prog.nodes.items() if s["type"] == "sample" and s["is_observed"]]
    if not observed:
        return "the model observes no site: its items are not scored"
    return "ok"


def _items_axis(site: dict[str, Any]) -> int | None:
    """The axis of a site's value that the "items" plate indexes, or None."""
    for frame in site["cond_indep_stack"]:
        if frame.name == "items":
            return site["value"].dim() - site["fn"].event_dim + frame.dim
    return None


def _check_masked_as_absent(model: FewShotModel, x: Tensor, measured: dict) -> str:
    B, T = x.shape[:2]
    if T < 3:
        return "n/a: needs sets of 3 or more"
    keep = [t for t in range(T) if t % 2 == 0]
    mask = torch.zeros(B, T, dtype=torch.bool, device=x.device)
    mask[:, keep] = True
    compact = x[:, keep]
    with torch.no_grad():
        guide = poutine.trace(model.guide).get_trace(compact)
    vals_c, vals = {}, {}
    for name, site in _latents(guide).items():
        v, axis = site["value"], _items_axis(site)
        vals_c[name] = v
        if axis is not None:  # masked items' latents: any value (here: standard normal)
            shape = list(v.shape)
            shape[axis] = T
            full = torch.randn(shape, dtype=v.dtype, device=v.device) if v.is_floating_point() \
                else torch.zeros(shape, dtype=v.dtype, device=v.device)
            index = [slice(None)] * v.dim()
            index[axis] = keep
            full[tuple(index)] = v
            v = full
        vals[name] = v
    gaps, sizes = [], []
    with torch.no_grad():
        for fn in (model.model, model.guide):
            a = _log_density(fn, compact, None, vals_c)
            b = _log_density(fn, x, mask, vals)
            gaps.append(float((a - b).abs()))
            sizes.append(float(a.abs()))
    measured["masked_as_absent_gap"] = max(gaps)
    scale = 1e-5 * max(1.0, *sizes)
    if max(gaps) > scale:
        return (f"masking items out moves the model's log density by {gaps[0]:.4g} and the "
                f"guide's by {gaps[1]:.4g} nats against the set without them")
    return "ok"


def _check_sample(model: FewShotModel, x: Tensor, items: int) -> str:
    want = (x.shape[0], 3, *model.event_shape)
    ctx = x[:, :items]
    try:
        with torch.no_grad():
            s = model.sample(ctx, 3)
    except ValueError as err:
        if items == 0:  # a model may have no 0-shot distribution, if it says so
            return f"n/a: refuses the empty context ({err})"
        raise
    if tuple(s.shape) != want:
        return f"sample of a context of {items} gives {tuple(s.shape)}, not {want}"
    if not torch.isfinite(s).all():
        return f"sample of a context of {items} is not finite"
    return "ok"


def _check_estimators(model: FewShotModel, x: Tensor, measured: dict, num_particles: int,
                      tolerance: float, rel_tolerance: float) -> str:
    B, T = x.shape[:2]
    lm = model.log_marginal(x, None, num_particles)
    if tuple(lm.shape) != (B,) or not torch.isfinite(lm).all():
        return f"log_marginal gives {tuple(lm.shape)} (finite: {bool(torch.isfinite(lm).all())})"
    cond = model.conditional_log_likelihoods(x, None, num_particles)
    if tuple(cond.shape) != (B, T) or not torch.isfinite(cond).all():
        return f"conditional_log_likelihoods gives {tuple(cond.shape)}, not {(B, T)}"
    lp = model.log_predictive(x[:, 2:], x[:, :2], num_particles)
    if tuple(lp.shape) != (B, T - 2) or not torch.isfinite(lp).all():
        return f"log_predictive of {T - 2} queries gives {tuple(lp.shape)}, not {(B, T - 2)}"
    mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
    mask[:, 1::2] = False
    if model.conditional_log_likelihoods(x, mask, 2)[~mask].abs().max() > 0:
        return "masked items get conditionals other than 0"
    gap = float((cond.sum(1) - lm).abs().max())
    allowed = tolerance * T + rel_tolerance * float(lm.abs().max())
    measured["chain_rule_gap"], measured["chain_rule_allowed"] = gap, allowed
    if gap > allowed:
        return (f"sum_t log p(x_t | x_<t) and log p(X) differ by {gap:.3g} nats, more than "
                f"the {allowed:.3g} importance sampling at K={num_particles} may explain")
    return "ok"


def _check_exchangeable_posterior(model: FewShotModel, x: Tensor, measured: dict) -> str:
    if not model.has_set_latent:
        return "n/a: no per-set latent"
    perm = torch.randperm(x.shape[1])
    with torch.no_grad():
        q, qp = model.context_posterior(x), model.context_posterior(x[:, perm])
        c = q.sample()
        a, b = q.log_prob(c), qp.log_prob(c)
    gap = float((a - b).abs().max())
    measured["permutation_gap"] = gap
    if gap > 1e-4 * max(1.0, float(a.abs().max())):
        return f"q(c | X) moves by {gap:.4g} nats (log density) when X is permuted"
    return "ok"


def _check_query_posteriors(model: FewShotModel, x: Tensor, measured: dict) -> str:
    B, T = x.shape[:2]
    query, context = x[:, 2:], x[:, :2]
    posts = model.query_posteriors(query, context, seed=3)
    padded = torch.cat([context, x[:, 2:3]], 1)  # one more context item, masked out
    pmask = torch.ones(B, 3, dtype=torch.bool, device=x.device)
    pmask[:, 2] = False
    masked = model.query_posteriors(query, padded, pmask, seed=3)
    if list(posts) != list(masked):
        return f"sites {list(posts)} with a masked context item, {list(masked)} without"
    gap = 0.0
    for name, q in posts.items():
        if tuple(q.batch_shape) != (B, T - 2):
            return f"site {name!r} has batch shape {tuple(q.batch_shape)}, not {(B, T - 2)}"
        with torch.no_grad():
            v = q.sample()
            a, b = q.log_prob(v), masked[name].log_prob(v)
        if not torch.isfinite(a).all():
            return f"site {name!r}: the log density of its own draw is not finite"
        gap = max(gap, float((a - b).abs().max()) / max(1.0, float(a.abs().max())))
    measured["query_posterior_mask_gap"] = gap
    if gap > 1e-4:
        return f"a masked context item moves the query posteriors (relative gap {gap:.3g})"
    return "ok"


def _check_rebuild(model: FewShotModel, x: Tensor) -> str:
    from ppl_fewshot.models import build

    try:
        other = build(model.name, **model.config())
        other.load_state_dict(model.state_dict())
    except (KeyError, TypeError, RuntimeError) as err:
        return (f"build({model.name!r}, **config()) does not rebuild it ({err}); make it with "
                "ppl_fewshot.models.build('package.module:Class', ...)")
    other.to(x.device).train(model.training)
    weights = []
    for m in (model, other):
        pyro.set_rng_seed(5)
        with torch.no_grad():
            weights.append(m.log_weights(x, None, 2))
    if not torch.allclose(*weights):
        return "the rebuilt model's importance weights differ from the model's"
    return "ok"


def check_model(
    model: FewShotModel,
    x: Tensor,
    num_particles: int = 200,
    tolerance: float = 3.0,
    rel_tolerance: float = 0.05,
    strict: bool = True,
    seed: int = 0,
) -> ContractReport:
    """Check ``model`` against the contract on the sets ``x[B, T, *event_shape]`` (T >= 3).

    Args:
        model: the model, e.g. ``build("package.module:Class")``.
        x: a few sets of real-looking items (e.g. episodes of a dataset).
        num_particles: importance samples of the chain-rule check.
        tolerance, rel_tolerance: the chain rule may miss by ``tolerance`` nats per item plus
            ``rel_tolerance`` times ``|log p(X)|``: the importance-sampling noise and the
            estimators' different biases on an untrained model (``log p(X)`` shares its K draws
            across the set). A trained model comes far closer: tighten them for one.
        strict: raise :class:`ContractError` naming every failed check (else only report).
        seed: seed of the draws (the caller's random state is restored after).

    Returns:
        A :class:`ContractReport`: each check's outcome and the numbers measured.
    """
    if x.dim() != 2 + len(model.event_shape) or tuple(x.shape[2:]) != tuple(model.event_shape):
        raise ValueError(f"x must be [B, T, *{tuple(model.event_shape)}], got {tuple(x.shape)}")
    results: dict[str, str] = {}
    measured: dict[str, float] = {}
    checks = {
        "sites": lambda: _check_sites(model, x),
        "masked-as-absent": lambda: _check_masked_as_absent(model, x, measured),
        "sample": lambda: _check_sample(model, x, 2),
        "sample-empty-context": lambda: _check_sample(model, x, 0),
        "estimators": lambda: _check_estimators(model, x, measured, num_particles, tolerance,
                                                rel_tolerance),
        "exchangeable-posterior": lambda: _check_exchangeable_posterior(model, x, measured),
        "query-posteriors": lambda: _check_query_posteriors(model, x, measured),
        "rebuild": lambda: _check_rebuild(model, x),
    }
    state = get_rng_state()  # python, numpy and torch: restored below
    try:
        pyro.set_rng_seed(seed)
        for name, check in checks.items():
            try:
                results[name] = check()
            except Exception as err:  # a crash is a failed check, reported with the others
                results[name] = f"raised {type(err).__name__}: {err}"
            logger.info("contract %s: %s", name, results[name])
    finally:
        set_rng_state(state)
    report = ContractReport(results, measured)
    if strict and not report.ok:
        lines = "\n".join(f"- {k}: {v}" for k, v in report.failures().items())
        raise ContractError(f"{model.name} breaks the model contract:\n{lines}")
    return report
