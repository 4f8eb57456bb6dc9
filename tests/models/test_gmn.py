"""Tests of the Generative Matching Network (ppl_fewshot.models.gmn)."""

from __future__ import annotations

import io
import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from ppl_fewshot.diagnostics import exchangeability_spread
from ppl_fewshot.models import build, default_config
from ppl_fewshot.models.gmn import GenerativeMatchingNetwork
from ppl_fewshot.nn.attention import causal_allowed, full_allowed
from tests.conftest import TINY_GMN as TINY


def tiny(**kw) -> GenerativeMatchingNetwork:
    torch.manual_seed(0)
    cfg = dict(TINY)
    cfg.update(kw)
    return build("gmn-small", **cfg)


def binary(*shape: int, p: float = 0.3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, 1, 28, 28, generator=g) < p).float()


def conditional_parts(m, x, mask, z):
    """Prior params, posterior params and likelihood logits of every item (vectorized)."""
    ctx = m.prepare(x, mask)
    allowed = causal_allowed(ctx["mask"], m.num_pseudo)
    prior = m.prior_params(ctx, allowed)
    post = m.posterior_params(ctx["h"], ctx, allowed)
    logits = m.likelihood_logits(z, ctx, allowed)
    return prior, post, logits


def test_registry_builds_presets():
    small = build("gmn-small")
    assert isinstance(small, GenerativeMatchingNetwork)
    assert (small.z_dim, small.state_dim, small.hidden) == (16, 64, 128)
    assert small.autoregressive and not small.has_set_latent
    cfg = default_config("gmn")
    assert cfg["z_dim"] == 50 and cfg["state_dim"] == 200
    assert cfg["attention_steps"] == 4 and cfg["prior_steps"] == 1 and cfg["pseudo_input"]
    with pytest.raises(TypeError):
        build("gmn-small", no_such_setting=1)
    with pytest.raises(ValueError):
        tiny(attention="sparse")
    with pytest.raises(ValueError):
        tiny(similarity="l2")


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"pseudo_input": False},
        {"attention": "average"},
        {"similarity": "dot", "prior_steps": 2},
        {"image_read": True},
        {"image_read": True, "pseudo_input": False},
        {"arch": "resnet"},
    ],
)
def test_vectorized_pass_equals_per_t_reference(kw):
    m = tiny(**kw)
    B, T = 2, 5
    x = binary(B, T)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 2] = False  # a hole in the middle of set 1
    z = torch.randn(B, T, m.z_dim)
    with torch.no_grad():
        (p_loc, p_scale), (q_loc, q_scale), logits = conditional_parts(m, x, mask, z)
        for t in range(T):  # slow reference: the memory holds x_<t only
            ctx = m.prepare(x[:, :t], mask[:, :t])
            allowed = full_allowed(ctx["memory_mask"], 1)
            loc, scale = m.prior_params(ctx, allowed)
            torch.testing.assert_close(loc[:, 0], p_loc[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(scale[:, 0], p_scale[:, t], atol=1e-5, rtol=1e-5)
            loc, scale = m.posterior_params(m.encode(x[:, t : t + 1]), ctx, allowed)
            torch.testing.assert_close(loc[:, 0], q_loc[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(scale[:, 0], q_scale[:, t], atol=1e-5, rtol=1e-5)
            lg = m.likelihood_logits(z[:, t : t + 1], ctx, allowed)
            torch.testing.assert_close(lg[:, 0], logits[:, t], atol=1e-4, rtol=1e-5)
    # the memory matters: the conditionals of later items are not all the first one's
    assert not torch.allclose(p_loc[0, 0], p_loc[0, 3]) or kw.get("attention") == "average"
    assert not torch.allclose(logits[0, 0], logits[0, 3], atol=1e-4)


@pytest.mark.parametrize("image_read", [False, True])
def test_causal_masking(image_read):
    m = tiny(image_read=image_read)
    B, T, t = 2, 6, 3
    x = binary(B, T)
    x2 = x.clone()
    x2[:, t:] = binary(B, T - t, seed=7)
    z = torch.randn(B, T, m.z_dim)
    with torch.no_grad():
        (pl1, ps1), (ql1, qs1), lg1 = conditional_parts(m, x, None, z)
        (pl2, ps2), (ql2, qs2), lg2 = conditional_parts(m, x2, None, z)
    # items < t see nothing of x_{>=t}; item t's prior and likelihood do not see x_t
    torch.testing.assert_close(pl1[:, : t + 1], pl2[:, : t + 1])
    torch.testing.assert_close(ps1[:, : t + 1], ps2[:, : t + 1])
    torch.testing.assert_close(lg1[:, : t + 1], lg2[:, : t + 1])
    torch.testing.assert_close(ql1[:, :t], ql2[:, :t])
    torch.testing.assert_close(qs1[:, :t], qs2[:, :t])
    assert not torch.allclose(ql1[:, t], ql2[:, t])  # the guide does see its own item
    assert not torch.allclose(lg1[:, t + 1], lg2[:, t + 1])  # and later items see x_t
    # the estimated conditionals log p(x_t | x_<t) under a fixed seed
    pyro.set_rng_seed(3)
    c1 = m.conditional_log_likelihoods(x, None, num_particles=8)
    pyro.set_rng_seed(3)
    c2 = m.conditional_log_likelihoods(x2, None, num_particles=8)
    torch.testing.assert_close(c1[:, :t], c2[:, :t])
    assert not torch.allclose(c1[:, t:], c2[:, t:])


def test_particle_weights_match_unbatched_computation():
    m = tiny()
    B, T, K = 2, 4, 3
    x = binary(B, T)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    pyro.set_rng_seed(11)
    lw = m.log_weights(x, mask, K, per_item=True)
    ctx = m.prepare(x, mask)
    pyro.set_rng_seed(11)  # the same draws as inside log_weights
    with torch.no_grad(), pyro.plate("particles", K, dim=-3):
        z = poutine.trace(m.guide).get_trace(x, mask, ctx).nodes["z"]["value"]
    assert z.shape == (K, B, T, m.z_dim)
    allowed = causal_allowed(mask, m.num_pseudo)
    with torch.no_grad():
        for k in range(K):
            p_loc, p_scale = m.prior_params(ctx, allowed)
            q_loc, q_scale = m.posterior_params(ctx["h"], ctx, allowed)
            logits = m.likelihood_logits(z[k], ctx, allowed)
            w = (
                dist.Bernoulli(logits=logits).log_prob(x).sum((-3, -2, -1))
                + dist.Normal(p_loc, p_scale).log_prob(z[k]).sum(-1)
                - dist.Normal(q_loc, q_scale).log_prob(z[k]).sum(-1)
            ) * mask
            torch.testing.assert_close(lw[k].detach(), w, atol=1e-3, rtol=1e-5)
    # per-set weights are the sums of per-item weights; padded items weigh nothing
    pyro.set_rng_seed(11)
    torch.testing.assert_close(m.log_weights(x, mask, K), lw.sum(-1))
    assert torch.all(lw[:, 1, 2:] == 0)


@pytest.mark.parametrize("image_read", [False, True])
def test_mask_padding_invariance(image_read):
    m = tiny(image_read=image_read)
    B, T = 2, 4
    x = binary(B, T)
    z = torch.randn(B, T + 2, m.z_dim)
    padded = torch.cat([x, binary(B, 2, p=0.8, seed=5)], 1)
    mask = torch.ones(B, T + 2, dtype=torch.bool)
    mask[:, T:] = False
    with torch.no_grad():
        (pl1, ps1), (ql1, qs1), lg1 = conditional_parts(m, x, None, z[:, :T])
        (pl2, ps2), (ql2, qs2), lg2 = conditional_parts(m, padded, mask, z)
    for a, b in ((pl1, pl2), (ps1, ps2), (ql1, ql2), (qs1, qs2), (lg1, lg2)):
        torch.testing.assert_close(a, b[:, :T])
    # a masked item in the middle is invisible to everyone else
    mid = torch.ones(B, T, dtype=torch.bool)
    mid[:, 1] = False
    x3 = x.clone()
    x3[:, 1] = 1.0 - x3[:, 1]
    with torch.no_grad():
        a = conditional_parts(m, x, mid, z[:, :T])
        b = conditional_parts(m, x3, mid, z[:, :T])
    keep = mid[0]
    for u, v in ((a[0][0], b[0][0]), (a[1][0], b[1][0]), (a[2], b[2])):
        torch.testing.assert_close(u[:, keep], v[:, keep])
    pyro.set_rng_seed(2)
    lw1 = m.log_weights(x, mid, 4, per_item=True)
    pyro.set_rng_seed(2)
    lw2 = m.log_weights(x3, mid, 4, per_item=True)
    torch.testing.assert_close(lw1, lw2)
    assert torch.all(lw1[..., 1] == 0)


def test_pseudo_input_makes_zero_shot_work():
    m = tiny()
    B = 3
    empty = binary(B, 0)
    s = m.sample(empty, 4)
    assert s.shape == (B, 4, 1, 28, 28)
    assert torch.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    x = binary(B, 3)
    # 0 shots is a proper, data-free prior: the first item's p(z) is the same for every set
    with torch.no_grad():
        (loc, scale), _, _ = conditional_parts(m, x, None, torch.zeros(B, 3, m.z_dim))
    torch.testing.assert_close(loc[:, 0], loc[:1, 0].expand(B, -1))
    assert not torch.allclose(loc[0, 0], loc[0, 2])
    lp = m.log_predictive(x[:, :1], empty, num_particles=6)
    assert lp.shape == (B, 1) and torch.isfinite(lp).all()
    assert m.log_weights(empty, None, 2).shape == (2, B)
    assert torch.all(m.log_weights(empty, None, 2) == 0)
    assert m.features(x).shape == (B, 3, m.z_dim)
    assert m.features(x[:, :2], x[:, 2:]).shape == (B, 2, m.z_dim)
    # without a pseudo-input: no 0-shot samples, but log p(X) stays defined (fallback)
    m2 = tiny(pseudo_input=False)
    with pytest.raises(ValueError, match="pseudo-input"):
        m2.sample(empty, 2)
    with pytest.raises(ValueError, match="pseudo-input"):
        m2.sample(x, 2, context_mask=torch.tensor([[True] * 3, [False] * 3, [True] * 3]))
    assert m2.sample(x, 2).shape == (B, 2, 1, 28, 28)
    assert torch.isfinite(m2.log_weights(x, None, 2, per_item=True)).all()


def test_attention_weights_are_distributions_over_allowed_slots():
    m = tiny()
    q, c = binary(2, 3), binary(2, 4, seed=9)
    cmask = torch.tensor([[True, True, False, True], [True, False, False, False]])
    maps = m.attention_weights(q, c, cmask)
    assert maps["recognition"].shape == (2, 3, 2, 5)
    assert maps["prior"].shape == (2, 3, 1, 5)
    for w in maps.values():
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert torch.all(w[0, ..., 3] == 0) and torch.all(w[1, ..., 2:] == 0)


def test_exchangeability_spread_runs():
    m = tiny()
    x = binary(2, 4)
    g = torch.Generator().manual_seed(0)
    spread = exchangeability_spread(m, x, num_permutations=3, num_particles=4, generator=g)
    assert spread.shape == (2,)
    assert torch.isfinite(spread).all() and (spread >= 0).all() and (spread > 0).any()


def test_exchangeability_spread_is_zero_for_exact_conditionals():
    """An exchangeable model with exact conditionals: the same log p(X) in every order
    (and no Monte Carlo noise); padded items stay out of it."""
    m = build("pixel-beta-bernoulli")
    x = binary(3, 6, p=0.4)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    g = torch.Generator().manual_seed(0)
    for same in (False, True):
        spread = exchangeability_spread(m, x, 8, mask=mask, generator=g, same_order=same)
        assert spread.shape == (3,) and spread.abs().max() < 1e-3
    # the terms themselves depend on the order; only their sum does not
    perm = [5, 0, 3, 1, 2, 4]
    ll, ll_perm = (m.conditional_log_likelihoods(x, mask),
                   m.conditional_log_likelihoods(x[:, perm], mask[:, perm]))
    assert not torch.allclose(ll[0], ll_perm[0][torch.argsort(torch.tensor(perm))])
    assert torch.allclose(ll.sum(-1), ll_perm.sum(-1), atol=1e-3)


def test_exchangeability_same_order_isolates_estimator_noise():
    """GMN: with a fixed particle seed the same-order estimates agree exactly, while the
    estimates in other orders differ: the order spread is the model's."""
    m = tiny()
    x = binary(2, 5)
    same = []
    for _ in range(2):
        pyro.set_rng_seed(3)
        same.append(m.conditional_log_likelihoods(x, None, 4).sum(-1))
    assert torch.equal(same[0], same[1])
    pyro.set_rng_seed(3)
    other = m.conditional_log_likelihoods(x[:, [4, 3, 2, 1, 0]], None, 4).sum(-1)
    assert not torch.allclose(other, same[0])
    g = torch.Generator().manual_seed(0)
    noise = exchangeability_spread(m, x, 4, 4, generator=g, same_order=True)
    assert torch.isfinite(noise).all() and (noise > 0).all()  # particles differ per call


def episodes(B: int, T: int, g: torch.Generator) -> torch.Tensor:
    """Sets of T noisy copies (3% flipped pixels) of a fresh random blocky prototype each.

    Every episode has its own new class, so held-out episodes are unseen classes.
    """
    coarse = (torch.rand(B, 1, 7, 7, generator=g) < 0.15).float()
    protos = coarse.repeat_interleave(4, -1).repeat_interleave(4, -2)
    x = protos.unsqueeze(1).expand(B, T, 1, 28, 28)
    flip = (torch.rand(B, T, 1, 28, 28, generator=g) < 0.03).float()
    return (x - flip).abs()


@pytest.mark.parametrize("prior,arch", [("gaussian", "conv"), ("mixture", "conv"),
                                        ("gaussian", "resnet")])
def test_short_training_lowers_heldout_loss(prior, arch):
    m = tiny(prior=prior, arch=arch)
    g = torch.Generator().manual_seed(0)
    held = episodes(8, 5, g)
    elbo = pyro.infer.Trace_ELBO()

    def heldout() -> float:
        pyro.set_rng_seed(0)
        with torch.no_grad():
            return float(elbo.differentiable_loss(m.model, m.guide, held, None, m.prepare(held)))

    before = heldout()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(20):
        x = episodes(8, 5, g)
        loss = elbo.differentiable_loss(m.model, m.guide, x, None, m.prepare(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = heldout()
    assert after < 0.8 * before, (before, after)


def test_image_read_lets_the_decoder_copy_an_attended_item():
    """Episodes [x, x] of incompressible random images (~475 nats each): only a model whose
    decoder sees the memory's pixels can make the repeat cheap; the vector read cannot."""

    def repeats(B: int, g: torch.Generator) -> torch.Tensor:
        return (torch.rand(B, 1, 1, 28, 28, generator=g) < 0.3).float().expand(B, 2, 1, 28, 28)

    nll = {}
    for image_read in (False, True):
        m = tiny(image_read=image_read)
        g = torch.Generator().manual_seed(0)
        held = repeats(16, g)
        elbo = pyro.infer.Trace_ELBO()
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        for _ in range(120):
            x = repeats(16, g)
            loss = elbo.differentiable_loss(m.model, m.guide, x, None, m.prepare(x))
            opt.zero_grad()
            loss.backward()
            opt.step()
        pyro.set_rng_seed(1)
        with torch.no_grad():
            nll[image_read] = -m.conditional_log_likelihoods(held, None, 20).mean(0)
    assert nll[True][0] > 400 and nll[False][0] > 400  # the first item has nothing to copy
    assert nll[False][1] > 0.9 * nll[False][0], nll  # the vector read does not copy
    assert nll[True][1] < 0.4 * nll[True][0], nll  # the image read does


def test_decoder_skip_input_is_checked():
    from ppl_fewshot.nn import ConvDecoder

    plain, skip = ConvDecoder(8, 4), ConvDecoder(8, 4, skip_channels=1)
    h, img = torch.randn(3, 2, 8), torch.rand(2, 1, 28, 28)
    assert skip(h, img).shape == (3, 2, 1, 28, 28)  # the image broadcasts over particles
    with pytest.raises(ValueError, match="skip"):
        skip(h)
    with pytest.raises(ValueError, match="skip"):
        plain(h, img)
    with pytest.raises(ValueError, match="image read"):  # the residual decoder has no skip
        tiny(image_read=True, arch="resnet")


def test_state_dict_round_trip():
    m = tiny()
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)  # a different initialization
    m2 = build("gmn-small", **TINY)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = binary(2, 3)
    pyro.set_rng_seed(4)
    a = m.log_weights(x, None, 5, per_item=True)
    pyro.set_rng_seed(4)
    b = m2.log_weights(x, None, 5, per_item=True)
    assert torch.equal(a, b)


def test_scoring_only_some_positions_equals_scoring_all():
    """prepare_queries: item t of the subset reads the same memory, with the same causal
    mask, as item t of the whole episode; so every distribution is the same row."""
    m = tiny()
    B, T, pos = 3, 6, [0, 2, 5]
    x = binary(B, T)
    mask = torch.tensor([[True] * 6, [True, True, False, True, True, True], [True] * 6])
    xq, mq, cq = m.prepare_queries(x, mask, pos)
    ctx = m.prepare(x, mask)
    z = torch.randn(2, B, T, m.z_dim)
    with torch.no_grad():
        for full, part in [
            (m.prior_params(ctx, ctx["allowed"]), m.prior_params(cq, cq["allowed"])),
            (m.posterior_params(ctx["h"], ctx, ctx["allowed"]),
             m.posterior_params(cq["h"], cq, cq["allowed"])),
            ((m.likelihood_logits(z, ctx, ctx["allowed"]),),
             (m.likelihood_logits(z[:, :, pos], cq, cq["allowed"]),)),
        ]:
            for a, b in zip(full, part):
                torch.testing.assert_close(a[..., pos, :] if a.dim() < 5 else a[:, :, pos], b)
    assert torch.equal(xq, x[:, pos]) and torch.equal(mq, mask[:, pos])
    # the estimator: same numbers up to Monte Carlo error, padded items exactly 0
    pyro.set_rng_seed(3)
    sub = m.conditional_log_likelihoods(x, mask, 400, positions=pos)
    every = m.conditional_log_likelihoods(x, mask, 400)[:, pos]
    assert sub.shape == (B, 3)
    assert torch.allclose(sub, every, atol=0.5), (sub, every)
    with pytest.raises(ValueError, match="outside"):
        m.conditional_log_likelihoods(x, mask, 10, positions=[6])
    # log_predictive scores one position: the query after its context
    q = m.log_predictive(x[:, 5:], x[:, :5], 400)
    assert q.shape == (B, 1)
    alone = m.conditional_log_likelihoods(x, None, 400, positions=[5])[:, 0]
    assert torch.allclose(q[:, 0], alone, atol=0.5), (q, alone)


# ------------------------------------------------------------------ mixture prior
def test_mixture_prior_settings_are_checked():
    with pytest.raises(ValueError, match="prior"):
        tiny(prior="flow")
    with pytest.raises(ValueError, match="pseudo-input"):
        tiny(prior="mixture", pseudo_input=False)
    g, mx = tiny(), tiny(prior="mixture")
    x = binary(2, 3)
    ctx = mx.prepare(x)
    with pytest.raises(ValueError, match="mixture"):
        mx.prior_params(ctx, ctx["allowed"])
    with pytest.raises(ValueError, match="Gaussian"):
        g.mixture_params(ctx, ctx["allowed"])
    # the Gaussian prior's distribution is the Normal of prior_params
    ctx = g.prepare(x)
    loc, scale = g.prior_params(ctx, ctx["allowed"])
    z = torch.randn(2, 3, g.z_dim)
    torch.testing.assert_close(
        g.prior_dist(ctx, ctx["allowed"]).log_prob(z), dist.Normal(loc, scale).log_prob(z).sum(-1)
    )


def test_mixture_prior_is_a_mixture_over_the_allowed_memory():
    m = tiny(prior="mixture")
    B, T = 2, 5
    x = binary(B, T)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 2] = False
    z = torch.randn(B, T, m.z_dim)
    with torch.no_grad():
        ctx = m.prepare(x, mask)
        allowed = ctx["allowed"]
        log_w, loc, scale = m.mixture_params(ctx, allowed)
        assert log_w.shape == (B, T, 1 + T) and loc.shape == scale.shape == (B, T, 1 + T, m.z_dim)
        assert torch.isneginf(log_w[~allowed]).all() and torch.isfinite(log_w[allowed]).all()
        torch.testing.assert_close(log_w.exp().sum(-1), torch.ones(B, T))
        # item t's components sit on the pseudo-input and the present items s < t
        assert allowed[1, 3].tolist() == [True, True, True, False, False, False]
        comp = dist.Normal(loc, scale).log_prob(z.unsqueeze(-2)).sum(-1)
        hand = torch.logsumexp(log_w + comp, -1)
        lp = m.prior_dist(ctx, allowed).log_prob(z)
        torch.testing.assert_close(lp, hand)
        # the vectorized pass equals the per-t reference whose memory holds x_<t only
        for t in range(T):
            c_t = m.prepare(x[:, :t], mask[:, :t])
            ref = m.prior_dist(c_t, full_allowed(c_t["memory_mask"], 1)).log_prob(z[:, t : t + 1])
            torch.testing.assert_close(ref[:, 0], lp[:, t], atol=1e-5, rtol=1e-5)
        # causal: changing x_{>=3} leaves the priors of items <= 3 alone
        x2 = x.clone()
        x2[:, 3:] = binary(B, T - 3, seed=7)
        c2 = m.prepare(x2, mask)
        lp2 = m.prior_dist(c2, c2["allowed"]).log_prob(z)
        torch.testing.assert_close(lp2[:, :4], lp[:, :4])
        assert not torch.allclose(lp2[:, 4], lp[:, 4])


def test_mixture_prior_trains_and_samples():
    m = tiny(prior="mixture")
    x = binary(2, 4)
    mask = torch.tensor([[True, True, True, True], [True, False, True, False]])
    loss = pyro.infer.Trace_ELBO().differentiable_loss(m.model, m.guide, x, mask)
    loss.backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)  # DDP needs every one
    # per-item weights: log p(x, z) - log q(z) with the mixture's log-density
    pyro.set_rng_seed(4)
    lw = m.log_weights(x, mask, 3, per_item=True)
    assert lw.shape == (3, 2, 4) and torch.isfinite(lw).all() and (lw[:, 1, 1] == 0).all()
    s0, s5 = m.sample(x[:, :0], 6), m.sample(x, 6)
    assert s0.shape == s5.shape == (2, 6, 1, 28, 28)
    assert ((s5 >= 0) & (s5 <= 1)).all() and not torch.allclose(s0, s5)


@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_temperature_scales_the_prior_around_its_means(monkeypatch, prior):
    m = tiny(prior=prior).eval()
    x = binary(2, 3)
    B, N = 2, 4000
    loc0 = torch.linspace(-2, 2, m.z_dim)

    def gaussian(ctx, allowed):
        return loc0.expand(B, N, m.z_dim), torch.full((B, N, m.z_dim), 2.0)

    def mixture(ctx, allowed):  # one component with weight: the item after the pseudo-input
        log_w = torch.tensor([-math.inf, 0.0, -math.inf, -math.inf]).expand(B, N, 4)
        loc = loc0.expand(B, N, 4, m.z_dim)
        return log_w, loc, torch.full_like(loc, 2.0)

    drawn = []
    monkeypatch.setattr(m, "prior_params" if prior == "gaussian" else "mixture_params",
                        gaussian if prior == "gaussian" else mixture)
    monkeypatch.setattr(m, "likelihood_logits",
                        lambda z, c, a: drawn.append(z) or torch.zeros(*z.shape[:-1], 1, 28, 28))
    torch.manual_seed(0)
    for t in (1.0, 0.25):
        m.sample(x, N, temperature=t)
    sd = [(z - loc0).std().item() for z in drawn]
    assert sd[0] == pytest.approx(2.0, rel=0.03) and sd[1] == pytest.approx(0.5, rel=0.03)
    assert (drawn[1] - loc0).mean().abs() < 0.02
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            m.sample(x, 2, temperature=bad)


def test_sampling_from_the_context_components_only(monkeypatch):
    m = tiny(prior="mixture").eval()
    x = binary(2, 3)
    B, N, M = 2, 50, 4  # memory: the pseudo-input and 3 items

    def params(ctx, allowed):  # the pseudo-input: weight 0.97 at +100; the items: -100
        log_w = torch.log(torch.tensor([0.97, 0.01, 0.01, 0.01])).expand(B, N, M)
        loc = torch.full((B, N, M, m.z_dim), -100.0)
        loc[:, :, 0] = 100.0
        return log_w, loc, torch.full_like(loc, 1e-3)

    drawn = []

    def logits(z, ctx, allowed):
        drawn.append(z)
        return torch.zeros(*z.shape[:-1], 1, 28, 28)

    monkeypatch.setattr(m, "mixture_params", params)
    monkeypatch.setattr(m, "likelihood_logits", logits)
    torch.manual_seed(5)
    m.sample(x, N, components="context")
    m.sample(x, N)
    assert drawn[0].shape == (B, N, m.z_dim) and (drawn[0] < -99).all()
    assert (drawn[1] > 99).float().mean() > 0.9  # "all" keeps the pseudo-input's component
    monkeypatch.undo()
    with pytest.raises(ValueError, match="mixture prior"):
        tiny().sample(x, 2, components="context")
    with pytest.raises(ValueError, match="context item"):
        m.sample(x[:, :0], 2, components="context")
    with pytest.raises(ValueError, match="components"):
        m.sample(x, 2, components="pseudo")
    assert m.sample(x, 2, components="context").shape == (2, 2, 1, 28, 28)
