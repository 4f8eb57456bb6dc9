"""The loss module: KL annealing scales latent sites only; IWAE bound >= ELBO."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch import nn

from ppl_fewshot import models
from ppl_fewshot.inference import ELBOLoss
from tests.conftest import TINY_GMN, make_prototype_classes
from tests.test_query_calibration import LinearGaussianAR, contexts, exact_conditionals


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    ds = make_prototype_classes(4, 6)
    return ds.to_float(ds.images[:, :3])


def test_beta_scales_only_the_kl_part(x) -> None:
    """loss(beta) = recon + beta * KL exactly, for the same random draws."""
    m = models.build("vae-small")
    L = ELBOLoss(m)
    vals = {}
    for beta in (0.0, 0.5, 1.0):
        L.beta = beta
        pyro.set_rng_seed(0)
        with torch.no_grad():
            vals[beta] = float(L(x))
    assert vals[0.5] == pytest.approx(0.5 * (vals[0.0] + vals[1.0]), rel=1e-5)
    assert vals[1.0] > vals[0.0]  # KL(q || p) > 0 adds to the loss


def test_iwae_bound_is_tighter_than_elbo(x) -> None:
    pyro.set_rng_seed(0)
    m = models.build("vae-small")
    elbo = torch.stack([ELBOLoss(m)(x) for _ in range(20)]).mean()
    iwae = torch.stack([ELBOLoss(m, "iwae", 50)(x) for _ in range(5)]).mean()
    assert iwae < elbo  # a larger lower bound, so a smaller loss


def test_iwae_of_a_model_without_set_latent_is_the_sum_of_each_items_bound() -> None:
    """On a linear-Gaussian autoregressive model (exact log p(x_t | X_<t)) with a guide at 0.6
    of the posterior's sd, K=1000: the loss (the sum of every conditional's own bound) is
    within 0.04 nats per item of the exact -log p(X), while the bound of each 20-item set's
    joint weight, from the same model, is still 0.06 or more above it; both are bounds."""
    m = LinearGaussianAR(guide_scale=0.6)
    x = contexts(B=20, T=20)
    exact = -float(exact_conditionals(m, x).sum()) / x.shape[0] / x.shape[1]
    pyro.set_rng_seed(0)
    with torch.no_grad():
        loss = float(ELBOLoss(m, "iwae", 1000)(x))
        lw = m.log_weights(x, None, 1000)  # [K, B]: one weight per set
        joint = -float((torch.logsumexp(lw, 0) - math.log(1000)).sum()) / x.shape[0] / x.shape[1]
    assert exact < loss < exact + 0.04
    assert joint > exact + 0.06


def _learnable_ar(offset: float = 0.0, scale: float = 1.0) -> LinearGaussianAR:
    """The linear-Gaussian model with the guide's offset and scale as parameters (the exact
    posterior at 0 and 1)."""
    m = LinearGaussianAR()
    m.guide_offset = nn.Parameter(torch.tensor(float(offset)))
    m.guide_scale = nn.Parameter(torch.tensor(float(scale)))
    return m


def _guide_grads(m, objective: str, x, k: int, seed: int) -> torch.Tensor:
    pyro.set_rng_seed(seed)
    m.zero_grad()
    ELBOLoss(m, objective, k)(x).backward()
    return torch.stack([m.guide_offset.grad, m.guide_scale.grad]).clone()


def test_dreg_has_the_iwae_value_and_no_guide_gradient_at_the_posterior() -> None:
    """At the exact posterior every weight is the same whatever the draw, so the doubly
    reparameterized gradient of the guide is exactly 0, while IWAE's plain estimator still
    carries the score function's noise; the loss is IWAE's, draw for draw (GMN too)."""
    m, x = _learnable_ar(), contexts(B=10, T=4)
    assert _guide_grads(m, "iwae-dreg", x, 5, 0).abs().max() < 1e-6
    assert _guide_grads(m, "iwae", x, 5, 0).abs().max() > 1e-3
    gmn = models.build("gmn-small", **TINY_GMN)
    xb = torch.rand(3, 5, 1, 28, 28).round()
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    values = []
    for objective in ("iwae", "iwae-dreg"):
        pyro.set_rng_seed(3)
        loss = ELBOLoss(gmn, objective, 4)(xb, mask)
        loss.backward()
        values.append(loss.item())
        assert all(torch.isfinite(p.grad).all() for p in gmn.parameters() if p.grad is not None)
    assert values[0] == pytest.approx(values[1], rel=1e-6)


def test_dreg_is_unbiased_and_far_less_noisy_near_the_posterior() -> None:
    """Guide at 0.9 of the posterior's sd, offset 0.05, K 10, 300 draws of each estimator: the
    mean gradients agree within 4 standard errors, and DReG's sd is below a fifth of IWAE's
    (about a twentieth when measured)."""
    m, x = _learnable_ar(0.05, 0.9), contexts(B=50, T=4)
    iw = torch.stack([_guide_grads(m, "iwae", x, 10, s) for s in range(300)])
    dr = torch.stack([_guide_grads(m, "iwae-dreg", x, 10, s) for s in range(300)])
    se = ((iw.var(0) + dr.var(0)) / 300).sqrt()
    assert ((iw.mean(0) - dr.mean(0)).abs() < 4 * se).all(), (iw.mean(0), dr.mean(0), se)
    assert (dr.std(0) < iw.std(0) / 5).all(), (dr.std(0), iw.std(0))


@pytest.mark.parametrize(
    "kw",
    [{"objective": "nope"}, {"num_particles": 0}, {"objective": "iwae", "num_particles": 1},
     {"objective": "iwae-dreg", "num_particles": 1}],
)
def test_bad_settings(kw) -> None:
    with pytest.raises(ValueError):
        ELBOLoss(models.build("vae-small"), **kw)


def test_dreg_refuses_a_per_set_latent() -> None:
    with pytest.raises(ValueError, match="per-set latent"):
        ELBOLoss(models.build("ns-small"), "iwae-dreg", 4)


def _terms_by_hand(m, x: torch.Tensor, mask=None, ctx=None) -> torch.Tensor:
    """Per-item ELBO terms [B, T] from a guide trace replayed through the model."""
    mask = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
    guide = pyro.poutine.trace(m.guide).get_trace(x, mask, ctx)
    model = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=guide)).get_trace(x, mask, ctx)
    lp = lambda tr, name: tr.nodes[name]["fn"].log_prob(tr.nodes[name]["value"])  # noqa: E731
    return lp(model, "x") + lp(model, "z") - lp(guide, "z")


@pytest.mark.parametrize("weights", [(), (5.0, 1.0), (2.0, 0.5, 3.0)])
def test_position_weights_weigh_each_items_term(x, weights) -> None:
    """loss = -sum_t w_t ELBO_t / #items, with ELBO_t computed by hand from the same draws;
    the last weight repeats."""
    pyro.set_rng_seed(0)
    m = models.build("gmn-small", **TINY_GMN)
    xb = torch.cat([x, x.flip(0)], 1)  # [4 sets, 6 items]
    L = ELBOLoss(m, position_weights=weights)
    with torch.no_grad():
        pyro.set_rng_seed(1)
        loss = float(L(xb))
        pyro.set_rng_seed(1)
        terms = _terms_by_hand(m, xb)
    full = (weights or (1.0,)) + (weights or (1.0,))[-1:] * 6
    w = torch.tensor(full[:6])
    assert loss == pytest.approx(float(-(terms * w).sum() / terms.numel()), rel=1e-5)
    with torch.no_grad(), L.plain():  # plain(): every term weighs 1 again
        pyro.set_rng_seed(1)
        plain = float(L(xb))
    assert plain == pytest.approx(float(-terms.sum() / terms.numel()), rel=1e-5)
    assert L.position_weights == tuple(weights) and L.beta == 1.0  # restored


@pytest.mark.parametrize(
    "name,kw",
    [
        ("vae-small", {"position_weights": (2.0, 1.0)}),  # not autoregressive
        ("gmn-small", {"position_weights": (0.0, 1.0)}),
        ("gmn-small", {"position_weights": (float("nan"),)}),
        ("gmn-small", {"position_weights": (2.0,), "objective": "iwae", "num_particles": 2}),
    ],
)
def test_bad_position_weights(name, kw) -> None:
    with pytest.raises(ValueError, match="position weights"):
        ELBOLoss(models.build(name, **(TINY_GMN if name == "gmn-small" else {})), **kw)


TINY = {"gmn-small": TINY_GMN, "vae-small": {"z_dim": 3, "hidden": 16, "channels": 4},
        "ns-small": {"c_dim": 6, "z_dim": 3, "hidden": 16, "channels": 4}}


def _singletons_by_hand(m, x, mask, objective: str, particles: int) -> float:
    """The singleton term's negative bound, summed over real items, from the inputs of an
    autoregressive model's ``prepare_singletons`` (the draws continue the random stream)."""
    x1, m1, ctx1 = m.prepare_singletons(x, mask)
    if objective == "iwae":
        lw = m.log_weights(x1, m1, particles, per_item=True, ctx=ctx1)  # [K, B, T]
        return -float((torch.logsumexp(lw, 0) - math.log(particles))[m1].sum())
    return -float(_terms_by_hand(m, x1, m1, ctx1)[m1].sum())


@pytest.mark.parametrize("name", ["gmn-small", "vae-small", "ns-small"])
@pytest.mark.parametrize("objective,particles", [("elbo", 1), ("iwae", 2)])
def test_singleton_term_adds_every_item_as_a_set_of_one(x, name, objective, particles) -> None:
    """loss(lam) = (bound of the sets + lam * bound of every real item alone) / #items, for the
    same draws; padded items are left out; position weights do not reach the sets of one.
    GMN scores the items alone from the episode's features (prepare_singletons, checked
    against sets of one in test_contract); the others as sets of one, checked here."""
    m = models.build(name, **TINY[name])
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[0, 2] = False
    n = int(mask.sum())
    weights = (3.0, 1.0) if objective == "elbo" and name == "gmn-small" else ()
    L = ELBOLoss(m, objective, particles, weights, singleton_weight=0.5)
    plain = ELBOLoss(m, objective, particles, weights)
    ones = ELBOLoss(m, objective, particles)
    with torch.no_grad():
        pyro.set_rng_seed(2)
        both = float(L(x, mask))
        pyro.set_rng_seed(2)
        sets = float(plain(x, mask)) * n
        if name == "gmn-small":
            single = _singletons_by_hand(m, x, mask, objective, particles)
        else:
            single = float(ones(x[mask].unsqueeze(1))) * n
        with L.plain():
            pyro.set_rng_seed(2)
            unweighted = float(L(x, mask))
            pyro.set_rng_seed(2)
            assert unweighted == pytest.approx(float(ones(x, mask)), rel=1e-6)
    assert both == pytest.approx((sets + 0.5 * single) / n, rel=1e-5)
    assert L.singleton_weight == 0.5 and L.position_weights == weights
    with pytest.raises(ValueError, match="singleton_weight"):
        ELBOLoss(m, singleton_weight=-1.0)
