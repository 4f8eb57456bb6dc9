"""Conjugate set models: every estimator checked against the closed form.

Amortized guides are trained here by SVI (``Trace_ELBO().differentiable_loss`` and
``torch.optim.Adam``) on sets drawn from the prior with random sizes 0..64 (so that the
largest tested size, 50, is inside the training range, not at its edge), then compared
with the exact posterior, evidence and predictive.

Tolerances (measured on the seeded runs below, then given about 1.5-2x room):

* posterior moments, per set size n in {1, 5, 20, 50}: over 200 simulated sets and
  all latent coordinates, the average |E_q - E_p| / sd_p < 0.5, its 90th percentile
  < 1.0, and the average |sd_q / sd_p - 1| < 0.2; n = 0 must give the prior exactly.
  (The amortized guide is a network trained for a few seconds; errors grow with n
  because the exact posterior sharpens, and are largest for rare sets in the prior's
  tails, so the maximum is reported, not asserted.)
* importance-sampled log p(X) with K = 1000: within 0.05 nats of the exact evidence
  for every test set (the issue's bound, not loosened; measured max 0.035-0.041).
* importance-sampled log p(x'|X): a difference of two K = 1000 estimates, each within
  0.05 nats, so within 0.1 nats.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from ppl_fewshot.models import build
from ppl_fewshot.models.nig import NIGDistribution
from tests.conftest import fit_guide

NAMES = ["beta-bernoulli", "dirichlet-categorical", "normal-inverse-gamma"]
SIZES = [0, 1, 5, 20, 50]






def sets_of_sizes(model, sizes: list[int], per_size: int, max_items: int = 50):
    s = torch.tensor(sizes).repeat_interleave(per_size)
    return model.simulate(len(s), max_items, sizes=s)


def exact_guide_params(model, x, mask):
    """The exact posterior's parameters in the guide's parametrisation."""
    p = model.exact_posterior(x, mask)
    if isinstance(p, NIGDistribution):
        return (p.params,)
    base = getattr(p, "base_dist", p)
    if isinstance(base, pyro.distributions.Beta):
        return base.concentration1, base.concentration0
    return (base.concentration,)


@pytest.fixture(scope="module", params=NAMES)
def trained(request):
    torch.manual_seed(0)
    model = build(request.param)
    losses = fit_guide(model)
    assert sum(losses[-50:]) < sum(losses[:50])
    return model.eval()


# ------------------------------------------------------------------ exact answers
@pytest.mark.parametrize("name", NAMES)
def test_contract_shapes_and_empty_set(name: str) -> None:
    pyro.set_rng_seed(0)
    m = build(name)
    x, mask, a = m.simulate(3, 4, sizes=torch.tensor([0, 2, 4]))
    assert x.shape == (3, 4, *m.event_shape) and a.shape[0] == 3
    with pyro.plate("particles", 7, dim=-3):
        tr = pyro.poutine.trace(m.guide).get_trace(x, mask)
        mt = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=tr)).get_trace(x, mask)
    assert tr.nodes["a"]["value"].shape[:3] == (7, 3, 1)
    assert mt.nodes["x"]["fn"].batch_shape == (7, 3, 4)
    assert m.context_posterior(x, mask).batch_shape == (3,)
    empty = x[:, :0]
    assert torch.equal(m.log_marginal(empty, None, 10), torch.zeros(3))
    assert torch.equal(m.exact_log_evidence(empty), torch.zeros(3))
    assert m.sample(empty, 5).shape == (3, 5, *m.event_shape)
    # the empty set (and a fully padded one) gives the prior exactly
    q = m.context_posterior(x[:1], mask[:1])
    assert torch.allclose(q.mean, m.prior().mean) and torch.allclose(q.variance, m.prior().variance)


@pytest.mark.parametrize("name", NAMES)
def test_exact_posterior_makes_importance_sampling_exact(name: str, monkeypatch) -> None:
    """With q = exact posterior every weight equals p(X): checks prior, likelihood,
    posterior and evidence against each other (zero-variance IS)."""
    pyro.set_rng_seed(1)
    m = build(name)
    x, mask, _ = sets_of_sizes(m, [1, 5, 20], 2, max_items=20)
    monkeypatch.setattr(m, "guide_params", lambda xx, mm: exact_guide_params(m, xx, mm))
    lw = m.log_weights(x, mask, 16)
    ex = m.exact_log_evidence(x, mask)
    assert torch.allclose(lw, ex.expand_as(lw), atol=2e-3, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_exact_predictive_is_ratio_of_evidences(name: str) -> None:
    pyro.set_rng_seed(2)
    m = build(name)
    x, mask, _ = sets_of_sizes(m, [0, 3, 10], 2, max_items=12)
    q = m.simulate(6, 1, sizes=torch.ones(6, dtype=torch.long))[0]
    lp = m.exact_log_predictive(q, x, mask)
    full = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    joint = m.exact_log_evidence(torch.cat([x, q], 1), full)
    assert torch.allclose(lp[:, 0], joint - m.exact_log_evidence(x, mask), atol=1e-4)


def test_nig_distribution_moments() -> None:
    torch.manual_seed(0)
    d = NIGDistribution(torch.tensor([[0.5, 2.0, 6.0, 3.0]]))
    s = d.sample((200_000,))
    assert torch.allclose(s.mean(0), d.mean, rtol=0.02, atol=0.01)
    assert torch.allclose(s.var(0), d.variance, rtol=0.1)
    ig = pyro.distributions.InverseGamma(6.0, 3.0)
    mu = pyro.distributions.Normal(0.5, (s[:5, 0, 1] / 2.0).sqrt())
    ref = ig.log_prob(s[:5, 0, 1]) + mu.log_prob(s[:5, 0, 0])
    assert torch.allclose(d.log_prob(s[:5])[:, 0], ref, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_guide_is_exactly_order_invariant(name: str, pooling: str) -> None:
    pyro.set_rng_seed(3)
    m = build(name, pooling=pooling)
    x, mask, _ = sets_of_sizes(m, [3, 9, 15], 2, max_items=15)
    perm = torch.randperm(15)
    p1 = m.guide_params(x, mask)
    p2 = m.guide_params(x[:, perm], mask[:, perm])
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))


# --------------------------------------------------------- trained amortized guides
def test_amortized_posterior_matches_exact(trained) -> None:
    pyro.set_rng_seed(10)
    rows = []
    for n in SIZES:
        x, mask, _ = sets_of_sizes(trained, [n], 200)
        with torch.no_grad():
            q = trained.context_posterior(x, mask)
            p = trained.exact_posterior(x, mask)
        sd_p = p.variance.sqrt()
        mean_err = (q.mean - p.mean).abs() / sd_p
        sd_err = (q.variance.sqrt() / sd_p - 1).abs()
        rows.append((n, mean_err.mean().item(), mean_err.quantile(0.9).item(),
                     mean_err.max().item(), sd_err.mean().item()))
        if n == 0:
            assert torch.allclose(q.mean, p.mean) and torch.allclose(q.variance, p.variance)
        else:
            assert mean_err.mean() < 0.5 and mean_err.quantile(0.9) < 1.0, rows[-1]
            assert sd_err.mean() < 0.2, rows[-1]
    print(f"\n{trained.name}: n, |dmean|/sd avg, q90, max, |sd ratio - 1| avg")
    for r in rows:
        print("  {:2d}  {:.3f}  {:.3f}  {:.3f}  {:.3f}".format(*r))


def test_importance_sampled_evidence_matches_exact(trained) -> None:
    pyro.set_rng_seed(11)
    x, mask, _ = sets_of_sizes(trained, SIZES, 3)
    lm = trained.log_marginal(x, mask, num_particles=1000)
    ex = trained.exact_log_evidence(x, mask)
    err = (lm - ex).abs()
    print(f"\n{trained.name}: |IS(K=1000) - exact| per set (n = {SIZES}, 3 each): "
          f"{[round(e, 4) for e in err.tolist()]}")
    # the bound, for every set. Measured (seeded): max 0.035 (BB), 0.041 (DC),
    # 0.007 (NIG). With training sizes only up to 50, one n = 50 BB set missed it (0.096):
    # the guide is least accurate at the edge of its training range.
    assert err.max() < 0.05, err


def test_elbo_below_evidence_and_iwae_tightens(trained) -> None:
    pyro.set_rng_seed(12)
    x, mask, _ = sets_of_sizes(trained, [1, 5, 20, 50], 2)
    ex = trained.exact_log_evidence(x, mask)
    lw = torch.cat([trained.log_weights(x, mask, 1000).detach() for _ in range(10)])  # [10000, B]
    # ELBO per set: E_q[log w] <= log p(X); allow 3 Monte Carlo standard errors
    elbo = lw.mean(0)
    se = lw.std(0) / math.sqrt(lw.shape[0])
    assert torch.all(elbo <= ex + 3 * se), (elbo - ex, se)
    # Pyro's own Trace_ELBO with many particles, summed over sets, is below the evidence
    loss = pyro.infer.Trace_ELBO(num_particles=2000, vectorize_particles=True,
                                 max_plate_nesting=2).loss(trained.model, trained.guide, x, mask)
    assert -loss <= ex.sum().item() + 0.05
    # IWAE_K = E[log mean of K weights] grows with K towards log p(X)
    iwae = []
    for k in (1, 10, 100, 1000):
        groups = lw[: (lw.shape[0] // k) * k].reshape(-1, k, lw.shape[1])
        iwae.append((torch.logsumexp(groups, 1) - math.log(k)).mean(0).sum().item())
    print(f"\n{trained.name}: exact {ex.sum():.4f}, IWAE K=1,10,100,1000: {iwae}")
    assert iwae[0] < iwae[1] < iwae[2] <= iwae[3] + 0.01
    assert iwae[3] <= ex.sum().item() + 0.05


def test_importance_sampled_predictive_matches_exact(trained) -> None:
    pyro.set_rng_seed(13)
    ctx, cmask, _ = sets_of_sizes(trained, [0, 1, 5, 20], 1, max_items=20)
    query = trained.simulate(4, 3, sizes=torch.full((4,), 3))[0]
    est = trained.log_predictive(query, ctx, num_particles=1000, context_mask=cmask)
    ex = trained.exact_log_predictive(query, ctx, cmask)
    assert est.shape == ex.shape == (4, 3)
    assert (est - ex).abs().max() < 0.1, est - ex
    # chain rule: conditional log-likelihoods from the base class vs the exact ones
    x, mask, _ = sets_of_sizes(trained, [6], 2, max_items=6)
    cond = trained.conditional_log_likelihoods(x, mask, num_particles=1000)
    exact_cond = torch.stack(
        [trained.exact_log_predictive(x[:, t : t + 1], x[:, :t])[:, 0] for t in range(6)], 1
    )
    assert (cond - exact_cond).abs().max() < 0.1


def test_query_posterior_is_the_context_posterior_with_the_query_and_near_exact(trained) -> None:
    """``query_posteriors(query, X)`` of the set latent is ``q(a | X u {x})`` for each query,
    exactly, and (trained guide) close to the exact conjugate posterior of ``X u {x}``."""
    pyro.set_rng_seed(11)
    x, mask, _ = sets_of_sizes(trained, [6], 100, max_items=6)
    context, query = x[:, :5], x[:, 5:]  # 5 drawings of each set, one query
    with torch.no_grad():
        q = trained.query_posteriors(query, context)["a"]
        own = trained.context_posterior(x)  # the same sets, query included
        p = trained.exact_posterior(x)
    assert tuple(q.batch_shape) == (100, 1)
    assert torch.allclose(q.mean[:, 0], own.mean, atol=1e-5)
    assert torch.allclose(q.variance[:, 0], own.variance, atol=1e-5)
    sd_p = p.variance.sqrt()
    mean_err = (q.mean[:, 0] - p.mean).abs() / sd_p
    assert mean_err.mean() < 0.5 and (q.variance[:, 0].sqrt() / sd_p - 1).abs().mean() < 0.2
