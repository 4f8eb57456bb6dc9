"""SBC and coverage of a new item's q(z | x, X) given a context, on a model whose posterior is
exact (a linear-Gaussian autoregressive set model), and with a guide made too narrow."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_fewshot.diagnostics import (
    query_interval_coverage,
    query_sbc_ranks,
    rank_uniformity_pvalues,
)
from ppl_fewshot.models import FewShotModel, as_mask, build
from ppl_fewshot.models.posteriors import simulate_queries
from tests.conftest import TINY_GMN


class LinearGaussianAR(FewShotModel):
    """z_t ~ N(0, I_d), x_t ~ N(W z_t + mean(x_<t), noise^2 I_D) with W = gain [I_d; 0]: the
    exact posterior of z_t given x_t and X_<t is N(v g / noise^2 (x_t - m_t)[:d], v I),
    v = 1 / (1 + g^2 / noise^2). The guide is that posterior, its mean moved by ``guide_offset``
    and its sd times ``guide_scale``; ``bias`` (0) is added to the model's mean of x_t only, so
    the guide is then that much off (any of them, and ``gain``, may be set to an
    ``nn.Parameter``)."""

    name = "linear-gaussian-ar"
    autoregressive = True

    def __init__(self, d: int = 2, D: int = 4, gain: float = 2.0, noise: float = 1.0,
                 guide_scale: float = 1.0, guide_offset: float = 0.0) -> None:
        super().__init__((D,))
        self.d, self.gain, self.noise, self.guide_scale = d, gain, noise, guide_scale
        self.guide_offset = guide_offset
        self.bias = 0.0

    def _shift(self, x, mask):
        m = mask.to(x.dtype).unsqueeze(-1)
        before = (x * m).cumsum(1) - x * m
        return before / (m.cumsum(1) - m).clamp(min=1)

    def model(self, x, mask=None, ctx=None):
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:
            return
        shift = self._shift(x, mask) + self.bias
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            z = pyro.sample("z", dist.Normal(x.new_zeros(B, T, self.d), 1.0).to_event(1)
                            .mask(mask))
            loc = shift + torch.nn.functional.pad(self.gain * z, (0, x.shape[-1] - self.d))
            pyro.sample("x", dist.Normal(loc, self.noise).to_event(1).mask(mask), obs=x)

    def guide(self, x, mask=None, ctx=None):
        mask = as_mask(x, mask)
        B, T = x.shape[:2]
        if T == 0:
            return
        v = 1.0 / (1.0 + self.gain ** 2 / self.noise ** 2)
        mean = v * self.gain / self.noise ** 2 * (x - self._shift(x, mask))[..., : self.d]
        with pyro.plate("sets", B, dim=-2), pyro.plate("items", T, dim=-1):
            q = dist.Normal(mean + self.guide_offset, v ** 0.5 * self.guide_scale)
            pyro.sample("z", q.to_event(1).mask(mask))


def contexts(B: int = 50, T: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(B, T, 4, generator=g)


def test_exact_guide_is_calibrated_given_each_context() -> None:
    model, ctx = LinearGaussianAR(), contexts()
    ranks = query_sbc_ranks(model, ctx, num_sims=20, num_draws=99, seed=1)  # 1000 simulations
    assert tuple(ranks.shape) == (1000, 2)
    p = rank_uniformity_pvalues(ranks, 99)
    assert (p > 1e-3).all(), p
    cover = query_interval_coverage(model, ctx, num_sims=20, num_draws=400, seed=2)
    for level, c in cover.items():
        assert ((c - level).abs() < 4 * math.sqrt(level * (1 - level) / 1000)).all(), (level, c)


def test_a_too_narrow_guide_fails_sbc_and_undercovers() -> None:
    model, ctx = LinearGaussianAR(guide_scale=0.5), contexts()
    ranks = query_sbc_ranks(model, ctx, num_sims=20, num_draws=99, seed=1)
    assert (rank_uniformity_pvalues(ranks, 99) < 1e-6).all()
    assert (query_interval_coverage(model, ctx, num_sims=20, num_draws=400)[0.9] < 0.75).all()


def test_simulated_items_follow_the_context() -> None:
    """x ~ p(x | z, X) is centred on the context's mean here (the model's shift)."""
    model = LinearGaussianAR()
    ctx = torch.full((2, 4, 4), 5.0)
    ctx[1] = -5.0
    latents, x = simulate_queries(model, ctx, 2000, seed=0)
    assert tuple(latents["z"].shape) == (2, 2000, 2) and tuple(x.shape) == (2, 2000, 4)
    assert torch.allclose(x.mean(1), torch.tensor([[5.0] * 4, [-5.0] * 4]), atol=0.3)
    a = simulate_queries(model, ctx, 5, seed=3)[1]
    assert torch.equal(a, simulate_queries(model, ctx, 5, seed=3)[1])


def test_image_models_and_refusals() -> None:
    gmn = build("gmn-small", **TINY_GMN)
    ctx = torch.rand(2, 3, 1, 28, 28).round()
    latents, x = simulate_queries(gmn, ctx, 4, seed=0)
    assert tuple(latents["z"].shape) == (2, 4, TINY_GMN["z_dim"])
    assert tuple(x.shape) == (2, 4, 1, 28, 28) and set(x.unique().tolist()) <= {0.0, 1.0}
    ranks = query_sbc_ranks(gmn, ctx, num_sims=4, num_draws=9)
    assert tuple(ranks.shape) == (8, TINY_GMN["z_dim"]) and ranks.max() <= 9
    with pytest.raises(TypeError, match="per-set latent"):
        simulate_queries(build("ns-small"), ctx, 2)


def exact_conditionals(model: LinearGaussianAR, x: torch.Tensor) -> torch.Tensor:
    """log p(x_t | X_<t) in closed form: N(mean of X_<t, diag(g^2 + s^2 on d dims, s^2))."""
    var = torch.full((x.shape[-1],), model.noise ** 2)
    var[: model.d] += model.gain ** 2
    shift = model._shift(x, torch.ones(x.shape[:2], dtype=torch.bool))
    return dist.Normal(shift, var.sqrt()).to_event(1).log_prob(x)


def test_widening_a_too_narrow_guide_makes_importance_sampling_exact() -> None:
    """A guide at half the posterior's sd, widened by 2, is the exact posterior: every importance
    weight is p(x_t | X_<t), so K = 3 is exact; unwidened, K = 200 is still biased low."""
    from ppl_fewshot.models.posteriors import widened_guide

    model = LinearGaussianAR(guide_scale=0.5)
    x = contexts(B=20, T=5, seed=4)
    exact = exact_conditionals(model, x)
    torch.manual_seed(0)
    narrow = model.conditional_log_likelihoods(x, None, 200)
    with widened_guide(model, 2.0):
        wide = model.conditional_log_likelihoods(x, None, 3)
        lp = model.log_predictive(x[:, 4:], x[:, :4], 3)
    assert (exact - narrow).mean() > 0.05  # a lower bound, visibly loose
    assert torch.allclose(wide, exact, atol=1e-4)
    assert torch.allclose(lp[:, 0], exact[:, 4], atol=1e-4)
    assert "guide" not in model.__dict__  # the class's guide is back
    with widened_guide(model, 2.0), widened_guide(model, 2.0):  # nested blocks compose
        q = model.query_posteriors(x[:, 4:], x[:, :4])["z"]
    assert torch.allclose(q.stddev, 4.0 * model.query_posteriors(x[:, 4:], x[:, :4])["z"].stddev)
    with pytest.raises(ValueError, match="positive"):
        with widened_guide(model, 0.0):
            pass
