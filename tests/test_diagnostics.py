"""Diagnostics checked against exact answers: PSIS k-hat/ESS, the ArviZ adapter, SBC, coverage.

The reference guide is the Beta-Bernoulli model's exact posterior (a tiny subclass); its
concentrations scaled by ``sharpness`` keep the mean and change the spread:
``sharpness < 1`` widens it (bounded importance weights), ``sharpness > 1`` makes it
overconfident (heavy-tailed weights, under-coverage).
"""

from __future__ import annotations

import math

import pytest
import torch

from ppl_fewshot.diagnostics import (
    conditional_importance_diagnostics,
    context_posterior_draws,
    context_posterior_to_inference_data,
    importance_diagnostics,
    interval_coverage,
    pareto_khat,
    query_posterior_to_inference_data,
    rank_uniformity_pvalues,
    sbc_ranks,
    summarize_khat,
)
from ppl_fewshot.models import build
from ppl_fewshot.models.conjugate import BetaBernoulli
from tests.conftest import TINY_GMN, TINY_NS, fit_guide


class ExactGuideBB(BetaBernoulli):
    """Beta-Bernoulli whose guide is the exact posterior with concentrations x ``sharpness``."""

    def __init__(self, sharpness: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sharpness = sharpness

    def guide_params(self, x, mask):
        post = self.exact_posterior(x, mask).base_dist
        return self.sharpness * post.concentration1, self.sharpness * post.concentration0


def _sets(model, num_sets: int, size: int, seed: int = 0):
    torch.manual_seed(seed)
    x, mask, _ = model.simulate(num_sets, size, sizes=torch.full((num_sets,), size))
    return x, mask


# ------------------------------------------------------------------------------- PSIS
def test_khat_recovers_known_pareto_tails() -> None:
    """Weights drawn from a generalized Pareto with shape k give k-hat ~ k (sign check)."""
    g = torch.Generator().manual_seed(0)
    u = torch.rand(4000, 1, generator=g, dtype=torch.float64)
    ks = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    w = (u ** (-ks) - 1) / ks  # GPD(k, sigma=1) by inversion, [K, 3]
    khat = pareto_khat(torch.log(w))
    assert torch.allclose(khat, ks, atol=0.12), khat
    # a light (log-normal with small sd) tail is far below 0.5
    assert pareto_khat(0.1 * torch.randn(4000, 2, generator=g)).max() < 0.3


def test_psis_exact_guide_has_constant_weights() -> None:
    model = ExactGuideBB()
    x, mask = _sets(model, 12, 20)
    d = importance_diagnostics(model, x, mask, num_particles=1000, chunk=1000)
    exact = model.exact_log_evidence(x, mask).double()
    assert torch.isneginf(d["khat"]).all()  # exact proposal: no tail to fit
    assert torch.allclose(d["ess"], torch.full_like(d["ess"], 1000.0), rtol=1e-6)
    assert torch.allclose(d["log_marginal"], exact, atol=1e-4)
    lm = model.log_marginal(x, mask, num_particles=200, chunk=200).double()
    assert torch.allclose(d["log_marginal"], lm, atol=1e-4)


def test_psis_wide_guide_is_reliable() -> None:
    """A proposal wider than the posterior has bounded weights: k-hat < 0.5, high ESS."""
    model = ExactGuideBB(sharpness=0.7)
    x, mask = _sets(model, 20, 20, seed=1)
    K = 1000
    d = importance_diagnostics(model, x, mask, num_particles=K, chunk=K)
    exact = model.exact_log_evidence(x, mask).double()
    assert d["khat"].max() < 0.5, d["khat"]
    assert d["ess"].min() > 0.4 * K and d["ess"].median() > 0.6 * K
    # MC error of log(mean w): sd ~ sqrt(1/ESS - 1/K) (delta method)
    mc_sd = (1 / d["ess"] - 1 / K).sqrt()
    assert ((d["log_marginal"] - exact).abs() < 5 * mc_sd + 1e-4).all()


def test_psis_overconfident_guide_is_flagged() -> None:
    """Posterior sd shrunk ~10x (concentrations x 100): heavy-tailed weights, k-hat > 0.7."""
    model = ExactGuideBB(sharpness=100.0)
    x, mask = _sets(model, 20, 20, seed=2)
    d = importance_diagnostics(model, x, mask, num_particles=1000, chunk=1000)
    exact = model.exact_log_evidence(x, mask).double()
    assert (d["khat"] > 0.7).float().mean() >= 0.9, d["khat"]
    assert d["khat"].median() > 0.8
    assert d["ess"].median() < 50
    assert (d["log_marginal"] - exact).mean() < -1.0  # the estimate is biased low
    assert d["khat_threshold"] == pytest.approx(1 - 1 / 3)


def test_psis_fitted_amortized_guide() -> None:
    model = build("beta-bernoulli")
    fit_guide(model, num_steps=300, num_sets=64, max_items=32)
    x, mask = _sets(model, 20, 5, seed=3)
    d = importance_diagnostics(model, x, mask, num_particles=1000, chunk=1000)
    exact = model.exact_log_evidence(x, mask).double()
    assert d["khat"].max() < 0.7 and d["khat"].median() < 0.5, d["khat"]
    assert (d["log_marginal"] - exact).abs().max() < 0.05


def test_conditional_khat_of_the_nll_table_estimates() -> None:
    """Set-latent path: the worse of the two prefix estimates; 0 shots = prefix 1 only."""
    wide, sharp = ExactGuideBB(sharpness=0.7), ExactGuideBB(sharpness=100.0)
    x, mask = _sets(wide, 12, 6, seed=4)
    mask[0, 3] = False  # a padded item reads NaN
    pos = (0, 2, 3, 5)
    ok = conditional_importance_diagnostics(wide, x, mask, pos, num_particles=500)
    bad = conditional_importance_diagnostics(sharp, x, mask, pos, num_particles=500)
    assert ok["khat"].shape == (12, 4) and torch.isnan(ok["khat"][0, 2])
    assert torch.nanquantile(ok["khat"], 0.9) < 0.5 < torch.nanquantile(bad["khat"], 0.5)
    s = summarize_khat(bad["khat"])
    assert len(s["median"]) == 4 and s["share_above_threshold"][1] > 0.5
    # per-item path (a model without a set latent): one estimate per asked item
    vae = build("vae-small", z_dim=2, hidden=8, channels=2)
    imgs = (torch.rand(3, 4, 1, 28, 28) < 0.3).float()
    d = conditional_importance_diagnostics(vae, imgs, None, (1, 3), num_particles=50)
    assert d["khat"].shape == (3, 2) and torch.isfinite(d["khat"]).all()
    assert ((d["ess"] >= 1) & (d["ess"] <= 50)).all()


# ------------------------------------------------------------------------------ ArviZ
def test_inference_data_matches_exact_posterior() -> None:
    az = pytest.importorskip("arviz")
    model = ExactGuideBB()
    x, mask = _sets(model, 4, 10)
    mask[1, 6:] = False  # a smaller set, padded
    S = 4000
    idata = context_posterior_to_inference_data(model, x, num_samples=S, mask=mask)
    c = idata.posterior["c"]
    assert c.dims == ("chain", "draw", "set", "latent") and c.shape == (1, S, 4, 5)
    post = model.exact_posterior(x, mask)
    mean, sd = post.mean.double(), post.variance.sqrt().double()
    got_mean = torch.from_numpy(c.mean(("chain", "draw")).values)
    got_sd = torch.from_numpy(c.std(("chain", "draw")).values)
    assert ((got_mean - mean).abs() < 4 * sd / math.sqrt(S)).all()
    # sd of a sample sd ~ sd * sqrt(1/(2S)) (near-normal draws); generous factor
    assert ((got_sd - sd).abs() < 5 * sd / math.sqrt(2 * S)).all()
    summary = az.summary(idata, kind="stats")
    assert len(summary) == 4 * 5 and {"mean", "sd"} <= set(summary.columns)
    hdi = az.hdi(idata, hdi_prob=0.9)["c"]
    assert hdi.shape == (4, 5, 2) and (hdi[..., 0] < hdi[..., 1]).all()


def test_inference_data_follows_the_guide_and_seed() -> None:
    model = build("beta-bernoulli")  # untrained amortized guide
    x, mask = _sets(model, 3, 7)
    state = torch.get_rng_state()
    a = context_posterior_draws(model, x, 3000, mask, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert torch.equal(a, context_posterior_draws(model, x, 3000, mask, seed=5))
    q = model.context_posterior(x, mask)
    with torch.no_grad():
        mean, sd = q.mean, q.variance.sqrt()
    assert ((a.mean(0) - mean).abs() < 4 * sd / math.sqrt(3000)).all()
    # the empty set gives the prior exactly
    empty = context_posterior_draws(model, x[:, :0], 3000, seed=1)
    prior = model.prior()
    assert ((empty.mean(0) - prior.mean).abs() < 4 * prior.variance.sqrt() / math.sqrt(3000)).all()


def test_query_inference_data_matches_exact_posterior_with_the_query() -> None:
    """With the exact guide, q(a | X u {x}) of each query is the conjugate posterior of the
    context plus that query; the global RNG is untouched and the seed repeats the draws."""
    az = pytest.importorskip("arviz")
    model = ExactGuideBB()
    x, _ = _sets(model, 3, 8)
    context, query = x[:, :5], x[:, 5:]
    S = 4000
    state = torch.get_rng_state()
    idata = query_posterior_to_inference_data(model, query, context, num_samples=S, seed=2)
    assert torch.equal(state, torch.get_rng_state())
    a = idata.posterior["a"]
    assert a.dims == ("chain", "draw", "set", "query", "a_dim") and a.shape == (1, S, 3, 3, 5)
    for j in range(3):
        post = model.exact_posterior(torch.cat([context, query[:, j : j + 1]], 1))
        mean, sd = post.mean.double(), post.variance.sqrt().double()
        got = torch.from_numpy(a.isel(query=j).mean(("chain", "draw")).values)
        assert ((got - mean).abs() < 4 * sd / math.sqrt(S)).all()
    again = query_posterior_to_inference_data(model, query, context, num_samples=S, seed=2)
    assert (again.posterior["a"] == a).all()
    assert len(az.summary(idata, kind="stats")) == 3 * 3 * 5


def test_query_inference_data_of_item_latents() -> None:
    """A GMN's q(z | x, X): one variable per latent site, dims (set, query, z_dim)."""
    pytest.importorskip("arviz")
    model = build("gmn-small", **TINY_GMN)
    x = torch.rand(2, 5, 1, 28, 28).round()
    idata = query_posterior_to_inference_data(model, x[:, 3:], x[:, :3], num_samples=50)
    z = idata.posterior["z"]
    assert list(idata.posterior.data_vars) == ["z"] and z.shape == (1, 50, 2, 2, model.z_dim)


def test_inference_data_needs_a_set_latent() -> None:
    model = build("vae-small")
    with pytest.raises(TypeError, match="per-set latent"):
        context_posterior_to_inference_data(model, torch.zeros(2, 3, 1, 28, 28))
    with pytest.raises(TypeError, match="per-set latent"):
        sbc_ranks(model, 10, 3)


# ------------------------------------------------------------------------ calibration
def test_rank_uniformity_test_itself() -> None:
    g = torch.Generator().manual_seed(0)
    flat = torch.randint(0, 100, (1000, 3), generator=g)
    piled = torch.where(flat < 50, flat // 10, 99 - flat // 10)  # ranks at both ends
    assert rank_uniformity_pvalues(flat, 99).min() > 0.01
    assert rank_uniformity_pvalues(piled, 99).max() < 1e-10
    with pytest.raises(ValueError):
        rank_uniformity_pvalues(flat, 99, bins=7)


def test_sbc_exact_guide_is_calibrated() -> None:
    model = ExactGuideBB()
    ranks = sbc_ranks(model, num_sets=500, set_size=10, num_draws=99, seed=0)
    assert ranks.shape == (500, 5) and ranks.dtype == torch.long
    assert ranks.min() >= 0 and ranks.max() <= 99
    # no rejection at level 0.01 with a Bonferroni correction over the 5 dims
    assert rank_uniformity_pvalues(ranks, 99).min() > 0.01 / 5
    N = 1000
    cov = interval_coverage(model, N, 10, levels=(0.5, 0.9), num_draws=500, seed=1)
    for level, c in cov.items():
        tol = 4 * math.sqrt(level * (1 - level) / N)  # 4 binomial sd
        assert c.shape == (5,) and ((c - level).abs() < tol).all(), (level, c)


def test_sbc_overconfident_guide_fails() -> None:
    model = ExactGuideBB(sharpness=10.0)  # sd shrunk ~3x, mean exact
    ranks = sbc_ranks(model, num_sets=500, set_size=10, num_draws=99, seed=0)
    assert rank_uniformity_pvalues(ranks, 99).max() < 1e-6
    cov = interval_coverage(model, 1000, 10, levels=(0.5, 0.9), num_draws=500, seed=1)
    assert (cov[0.9] < 0.6).all() and (cov[0.5] < 0.3).all(), cov


def test_fitted_guide_coverage() -> None:
    model = build("beta-bernoulli")
    fit_guide(model, num_steps=300, num_sets=64, max_items=32)
    cov = interval_coverage(model, 1000, 5, levels=(0.9,), num_draws=500, seed=2)
    assert ((cov[0.9] - 0.9).abs() < 0.05).all(), cov
    assert rank_uniformity_pvalues(sbc_ranks(model, 500, 5, seed=3), 99).min() > 0.001


# ------------------------------------------------------------- sample fidelity
class _MeanJudge(torch.nn.Module):
    """A judge whose q(c | X) is Normal(mean pixel image of X, 1): the nearest mean wins."""

    event_shape = (1, 6, 6)

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # where the judge lives (CPU)

    def context_posterior(self, x: torch.Tensor):
        loc = x.flatten(2).mean(1)
        normal = torch.distributions.Normal(loc, torch.ones_like(loc))
        return torch.distributions.Independent(normal, 1)


def test_judge_gives_items_to_the_nearest_reference_set() -> None:
    from ppl_fewshot.diagnostics import judge_classes, sample_fidelity

    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(4, 1, 1, 6, 6, generator=g) < 0.5).float()
    refs = protos.expand(4, 3, 1, 6, 6)  # class k: three copies of prototype k
    items = protos.expand(4, 2, 1, 6, 6)  # episode e draws two copies of prototype e
    own = torch.tensor([[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]])
    judge = _MeanJudge()
    assert torch.equal(judge_classes(judge, items, refs, own), torch.zeros(4, 2, dtype=torch.long))
    out = sample_fidelity(judge, items, refs, own)
    assert out["fidelity"] == 1.0 and out["items"] == 8 and out["interval"][1] == 1.0
    # episode e's items are really prototype e+1's: the judge says column 1, fidelity 0
    shifted = protos.roll(-1, 0).expand(4, 2, 1, 6, 6)
    assert (judge_classes(judge, shifted, refs, own) == 1).all()
    assert sample_fidelity(judge, shifted, refs, own)["fidelity"] == 0.0
    with pytest.raises(ValueError, match="candidates"):
        judge_classes(judge, items, refs, own[:2])
    with pytest.raises(ValueError, match="range"):
        judge_classes(judge, items, refs, own + 1)
    with pytest.raises(TypeError, match="context_posterior"):
        judge_classes(object(), items, refs, own)


def test_judge_accepts_a_neural_statistician() -> None:
    from ppl_fewshot.diagnostics import judge_classes

    torch.manual_seed(0)
    ns = build("ns", c_dim=3, z_dim=2, hidden=16, channels=2).eval()
    x = (torch.rand(3, 4, 1, 28, 28) < 0.3).float()
    pred = judge_classes(ns, x[:, :2], x[:, 2:], torch.tensor([[0, 1], [1, 2], [2, 0]]))
    assert pred.shape == (3, 2) and ((pred >= 0) & (pred < 2)).all()


def test_copy_distance_counts_differing_pixels_to_the_nearest_item() -> None:
    from ppl_fewshot.diagnostics import copy_distance

    context = torch.zeros(1, 2, 1, 4, 4)
    context[0, 1] = 1.0
    items = torch.zeros(1, 3, 1, 4, 4)
    items[0, 1, 0, 0, :2] = 1.0  # 2 of 16 pixels away from the blank item
    items[0, 2] = 1.0
    items[0, 2, 0, 0, 0] = 0.0  # 1 pixel away from the full item
    torch.testing.assert_close(copy_distance(items, context), torch.tensor([[0.0, 2 / 16, 1 / 16]]))
    with pytest.raises(ValueError, match="context"):
        copy_distance(items, context[:, :0])


def test_sample_diversity_is_the_mean_pairwise_pixel_distance() -> None:
    from ppl_fewshot.diagnostics import sample_diversity

    items = torch.zeros(2, 3, 1, 2, 2)
    items[0, 1, 0, 0, 0] = 1.0  # episode 0: distances 1/4, 0, 1/4 between the three pairs
    torch.testing.assert_close(sample_diversity(items), torch.tensor([1 / 6, 0.0]))
    with pytest.raises(ValueError, match="2 items"):
        sample_diversity(items[:, :1])


# ------------------------------------------------------------------------- ELBO terms
def test_elbo_terms_of_an_exact_guide_add_up_to_the_evidence() -> None:
    """Exact posterior as guide: every draw's ELBO is log p(X), so the terms add up to it
    exactly (padding included), and the latent's term is KL(posterior || prior)."""
    from torch.distributions import kl_divergence

    from ppl_fewshot.diagnostics import elbo_terms

    model = ExactGuideBB(dim=6)
    x, _ = _sets(model, 5, 8)
    mask = torch.ones(5, 8, dtype=torch.bool)
    mask[1, 5:] = False
    mask[3, 1:] = False
    x = x * mask[..., None]  # padding holds zeros, which must count for nothing
    torch.manual_seed(1)
    terms = elbo_terms(model, x, mask, num_particles=400)
    assert list(terms) == ["a", "x"] and all(t.shape == (5,) for t in terms.values())
    exact = model.exact_log_evidence(x, mask)
    torch.testing.assert_close(terms["a"] + terms["x"], -exact, rtol=1e-4, atol=1e-3)
    kl = kl_divergence(model.exact_posterior(x, mask), model.prior())
    # Monte Carlo error of 400 draws of a 6-feature Beta KL: a few hundredths of a nat
    assert torch.allclose(terms["a"], kl, atol=0.15), (terms["a"], kl)
    with pytest.raises(ValueError, match="num_particles"):
        elbo_terms(model, x, mask, num_particles=0)


@pytest.mark.parametrize("name, cfg", [
    ("ns", {**TINY_NS, "sample_dropout": 0.5}),
    ("gmn", TINY_GMN),
])
def test_elbo_terms_split_pyros_elbo(name: str, cfg: dict) -> None:
    """One draw: the terms add up to Pyro's Trace_ELBO loss of the same draw, in evaluation
    mode (the Neural Statistician's sample dropout is off, and the model's mode comes back);
    the Neural Statistician's context term is the closed-form KL(q(c|X) || N(0, I))."""
    import pyro
    from pyro.infer import Trace_ELBO
    from torch.distributions import kl_divergence

    from ppl_fewshot.diagnostics import elbo_terms

    torch.manual_seed(0)
    model = build(name, **cfg).train()
    x = (torch.rand(3, 4, 1, 28, 28) < 0.3).float()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    pyro.set_rng_seed(2)
    terms = elbo_terms(model, x, mask, num_particles=1)
    assert model.training
    model.eval()
    pyro.set_rng_seed(2)
    with torch.no_grad():
        loss = Trace_ELBO().loss(model.model, model.guide, x, mask, model.prepare(x, mask))
    assert list(terms)[-1] == "x" and "z" in terms
    assert math.isclose(sum(t.sum().item() for t in terms.values()), loss, rel_tol=1e-5)
    if name == "ns":
        with torch.no_grad():
            q_c = model.posterior_c(model.encoder(x), mask)  # batch [3, 1], like the prior's
        kl_c = kl_divergence(q_c, model.prior_c(3)).reshape(3)
        torch.testing.assert_close(elbo_terms(model, x, mask, 2000)["c"], kl_c, rtol=0.05,
                                   atol=0.05)


def test_elbo_terms_per_item_are_each_conditionals_terms() -> None:
    """per_item: [B, T] terms that add up to the per-set ones (same draws), 0 at padding; a
    GMN's item t is its conditional's term, unchanged when later items change; the Neural
    Statistician's per-set context is refused."""
    import pyro

    from ppl_fewshot.diagnostics import elbo_terms

    torch.manual_seed(0)
    model = build("gmn", **TINY_GMN)
    x = (torch.rand(3, 4, 1, 28, 28) < 0.3).float()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    pyro.set_rng_seed(3)
    items = elbo_terms(model, x, mask, num_particles=2, per_item=True)
    pyro.set_rng_seed(3)
    sets = elbo_terms(model, x, mask, num_particles=2)
    assert list(items) == list(sets) == ["z", "x"]
    for name in sets:
        assert items[name].shape == (3, 4)
        assert (items[name][~mask] == 0).all() and (items[name][mask] != 0).all()
        torch.testing.assert_close(items[name].sum(-1), sets[name])
    later = x.clone()
    later[:, 2:] = 1 - later[:, 2:]
    pyro.set_rng_seed(3)
    changed = elbo_terms(model, later, mask, num_particles=2, per_item=True)
    for name in sets:
        torch.testing.assert_close(changed[name][:, :2], items[name][:, :2])
        assert not torch.allclose(changed[name][0, 2:], items[name][0, 2:])
    with pytest.raises(ValueError, match="'c' is not per item"):
        elbo_terms(build("ns", **TINY_NS), x, mask, num_particles=1, per_item=True)


def test_elbo_terms_name_what_they_cannot_split() -> None:
    """A latent shared by all sets is not a per-set term; a latent the guide misses is an error."""
    import pyro
    import pyro.distributions as dist

    from ppl_fewshot.diagnostics import elbo_terms
    from ppl_fewshot.models import FewShotModel

    class Shared(FewShotModel):
        def model(self, x, mask=None, ctx=None):
            g = pyro.sample("g", dist.Normal(0.0, 1.0))
            with pyro.plate("sets", x.shape[0], dim=-2), pyro.plate("items", x.shape[1], dim=-1):
                pyro.sample("x", dist.Normal(g, 1.0), obs=x)

        def guide(self, x, mask=None, ctx=None):
            pyro.sample("g", dist.Normal(0.0, 2.0))

    class Forgetful(Shared):
        def guide(self, x, mask=None, ctx=None):
            pass

    x = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="'g' is not per set"):
        elbo_terms(Shared(event_shape=()), x)
    with pytest.raises(ValueError, match="'g' of the model is not in the guide"):
        elbo_terms(Forgetful(event_shape=()), x)
