"""Tests of the one-shot conditional VAE (ppl_fewshot.models.cvae)."""

from __future__ import annotations

import io

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_fewshot.inference import ELBOLoss
from ppl_fewshot.models import available, build, default_config
from ppl_fewshot.models.cvae import OneShotCVAE, exemplar_index
from tests.conftest import make_prototype_classes

TINY = {"z_dim": 4, "hidden": 32, "channels": 4}


def tiny(**kw) -> OneShotCVAE:
    torch.manual_seed(0)
    cfg = dict(TINY)
    cfg.update(kw)
    m = build("cvae-small", **cfg)
    with torch.no_grad():  # a null exemplar unlike any image's features
        m.null_exemplar.copy_(torch.randn(m.hidden))
    return m


def binary(*shape: int, p: float = 0.3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, 1, 28, 28, generator=g) < p).float()


def conditional_parts(m, x, mask, z):
    """Prior params, posterior params and likelihood logits of every item (vectorized)."""
    ctx = m.prepare(x, mask)
    return m.prior_params(ctx["c"]), m.posterior_params(ctx["h"], ctx["c"]), m.likelihood_logits(
        z, ctx["c"]
    )


def flat(parts):
    (pl, ps), (ql, qs), lg = parts
    return [pl, ps, ql, qs, lg]


def test_registry_builds_presets():
    assert {"cvae", "cvae-small"} <= set(available())
    small = build("cvae-small")
    assert isinstance(small, OneShotCVAE)
    assert (small.z_dim, small.hidden, small.condition_on) == (16, 128, "first")
    assert small.autoregressive and not small.has_set_latent
    assert build("cvae-small", condition_on="last").condition_on == "last"
    cfg = default_config("cvae")
    assert (cfg["z_dim"], cfg["hidden"], cfg["channels"]) == (32, 256, 32)
    with pytest.raises(TypeError):
        build("cvae-small", no_such_setting=1)
    with pytest.raises(ValueError, match="condition_on"):
        tiny(condition_on="random")


def test_exemplar_index_tables():
    mask = torch.tensor(
        [[True, True, True, True, True], [False, True, False, True, True], [False] * 5]
    )
    first = torch.tensor([[-1, 0, 0, 0, 0], [-1, -1, 1, 1, 1], [-1] * 5])
    last = torch.tensor([[-1, 0, 1, 2, 3], [-1, -1, 1, 1, 3], [-1] * 5])
    assert torch.equal(exemplar_index(mask, "first"), first)
    assert torch.equal(exemplar_index(mask, "last"), last)
    assert exemplar_index(mask[:, :0], "first").shape == (3, 0)
    with pytest.raises(ValueError):
        exemplar_index(mask, "middle")


@pytest.mark.parametrize("T", [0, 1, 5])
def test_shapes_for_set_sizes(T):
    m = tiny()
    B, K = 3, 4
    x = binary(B, T)
    mask = torch.ones(B, T, dtype=torch.bool)
    if T > 1:
        mask[1, 2:] = False
    if T > 0:
        mask[2, 0] = False
    lw = m.log_weights(x, mask, K, per_item=True)
    assert lw.shape == (K, B, T) and torch.isfinite(lw).all()
    assert torch.all(lw[..., ~mask] == 0)
    assert m.log_weights(x, mask, K).shape == (K, B)
    cond = m.conditional_log_likelihoods(x, mask, num_particles=6)
    assert cond.shape == (B, T) and torch.all(cond[~mask] == 0)
    assert torch.all(cond[mask] < 0)
    s = m.sample(x, 2, context_mask=mask)
    assert s.shape == (B, 2, 1, 28, 28) and torch.all((s >= 0) & (s <= 1))
    assert m.features(x).shape == (B, T, m.z_dim)
    assert m.features(binary(B, 2, seed=4), x, mask).shape == (B, 2, m.z_dim)
    if T == 0:
        assert torch.all(m.log_weights(x, None, 2) == 0)


@pytest.mark.parametrize("rule", ["first", "last"])
def test_exemplar_rule(rule):
    """Item t's distributions depend on x_t (guide only) and its exemplar, nothing else."""
    m = tiny(condition_on=rule)
    B, T, t = 2, 6, 4
    x = binary(B, T)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[:, 3] = False  # a hole just before t: "last" skips it
    e = {"first": 0, "last": 2}[rule]
    assert torch.all(exemplar_index(mask, rule)[:, t] == e)
    z = torch.randn(B, T, m.z_dim)
    with torch.no_grad():
        base = flat(conditional_parts(m, x, mask, z))
        for s in range(T):
            x2 = x.clone()
            x2[:, s] = binary(B, 1, p=0.6, seed=10 + s)[:, 0]
            new = flat(conditional_parts(m, x2, mask, z))
            prior_and_lik = [0, 1, 4]
            if s == e:  # the exemplar moves the prior, the guide and the likelihood
                for i in range(5):
                    assert not torch.allclose(base[i][:, t], new[i][:, t]), (s, i)
            elif s == t:  # the item itself moves only the guide
                for i in prior_and_lik:
                    torch.testing.assert_close(base[i][:, t], new[i][:, t])
                assert not torch.allclose(base[2][:, t], new[2][:, t])
            else:
                for i in range(5):
                    torch.testing.assert_close(base[i][:, t], new[i][:, t])
        # the reference: one exemplar, encoded on its own
        c = m.encode(x[:, e])
        loc, scale = m.prior_params(c)
        torch.testing.assert_close(loc, base[0][:, t])
        torch.testing.assert_close(scale, base[1][:, t])
        torch.testing.assert_close(m.likelihood_logits(z[:, t], c), base[4][:, t])
    # the estimated conditional of item t under a fixed seed: same draws, same numbers
    x3 = x.clone()
    other = 1 if rule == "first" else 0  # a present earlier item that is not the exemplar
    x3[:, other] = 1.0 - x3[:, other]
    pyro.set_rng_seed(3)
    c1 = m.conditional_log_likelihoods(x, mask, num_particles=8)
    pyro.set_rng_seed(3)
    c3 = m.conditional_log_likelihoods(x3, mask, num_particles=8)
    torch.testing.assert_close(c1[:, t], c3[:, t])
    assert not torch.allclose(c1[:, other], c3[:, other])


def test_first_and_last_differ_and_null_exemplar():
    x = binary(2, 4)
    mask = torch.tensor([[True] * 4, [False, False, True, True]])
    first, last = tiny(condition_on="first"), tiny(condition_on="last")
    z = torch.zeros(2, 4, 4)
    with torch.no_grad():
        pf = flat(conditional_parts(first, x, mask, z))
        pl = flat(conditional_parts(last, x, mask, z))
        # same weights, same exemplar for items 1 (both: item 0), different for item 3
        torch.testing.assert_close(pf[0][0, 1], pl[0][0, 1])
        assert not torch.allclose(pf[0][0, 3], pl[0][0, 3])
        # items with no earlier present item read the null exemplar: the same prior
        null_loc, _ = first.prior_params(first.null_exemplar)
        for b, t in ((0, 0), (1, 0), (1, 1), (1, 2)):
            torch.testing.assert_close(pf[0][b, t], null_loc)
        assert not torch.allclose(pf[0][1, 3], null_loc)
        # features without a context: the guide mean against the null exemplar
        f = first.features(x)
        q_loc, _ = first.posterior_params(first.encode(x), first.null_exemplar.expand(2, 4, -1))
        torch.testing.assert_close(f, q_loc)
        torch.testing.assert_close(pf[2][:, 0], f[:, 0])


@pytest.mark.parametrize("rule", ["first", "last"])
def test_sample_and_features_use_the_rule(rule):
    m = tiny(condition_on=rule)
    B, Tc = 3, 4
    ctx = binary(B, Tc)
    cmask = torch.tensor([[True] * 4, [False, True, True, False], [False] * 4])
    q = binary(B, 1, seed=5)
    with torch.no_grad():
        c = m.context_embedding(ctx, cmask, 2)
        full = m.prepare(torch.cat([ctx, q], 1), torch.cat([cmask, torch.ones(B, 1).bool()], 1))
        torch.testing.assert_close(c, full["c"][:, Tc:].expand(B, 2, -1))
        torch.testing.assert_close(c[2, 0], m.null_exemplar)  # empty context: null
        torch.testing.assert_close(
            m.features(q, ctx, cmask), m.posterior_params(full["h"][:, Tc:], full["c"][:, Tc:])[0]
        )
    empty = ctx[:, :0]
    torch.manual_seed(0)
    s = m.sample(empty, 5)
    assert s.shape == (B, 5, 1, 28, 28) and torch.isfinite(s).all()
    assert torch.all((s > 0) & (s < 1))
    torch.manual_seed(0)  # an all-padded context is the empty context
    torch.testing.assert_close(m.sample(ctx, 5, torch.zeros(B, Tc).bool()), s)
    assert not torch.allclose(m.sample(ctx, 5, cmask)[:2], s[:2])


def test_scoring_only_some_positions_equals_scoring_all():
    m = tiny(condition_on="last")
    B, T, pos = 3, 6, [0, 2, 5]
    x = binary(B, T)
    mask = torch.tensor([[True] * 6, [True, True, False, False, True, True], [False] + [True] * 5])
    with torch.no_grad():
        xq, mq, cq = m.prepare_queries(x, mask, pos)
        ctx = m.prepare(x, mask)
        assert torch.equal(xq, x[:, pos]) and torch.equal(mq, mask[:, pos])
        assert torch.equal(cq["exemplar"], ctx["exemplar"][:, pos])
        z = torch.randn(2, B, T, m.z_dim)
        for a, b in zip(
            flat(conditional_parts(m, x, mask, z)),
            [*m.prior_params(cq["c"]), *m.posterior_params(cq["h"], cq["c"]),
             m.likelihood_logits(z[:, :, pos], cq["c"])],
        ):
            torch.testing.assert_close(a[..., pos, :] if a.dim() < 5 else a[:, :, pos], b,
                                       atol=1e-5, rtol=1e-5)
    pyro.set_rng_seed(3)
    sub = m.conditional_log_likelihoods(x, mask, 300, positions=pos)
    every = m.conditional_log_likelihoods(x, mask, 300)[:, pos]
    assert sub.shape == (B, 3)
    assert torch.all(sub[~mask[:, pos]] == 0) and torch.all(every[~mask[:, pos]] == 0)
    assert torch.allclose(sub, every, atol=0.5), (sub, every)
    # log_predictive scores one position: the query after its context
    q = m.log_predictive(x[:, 5:], x[:, :5], 300, context_mask=mask[:, :5])
    assert torch.allclose(q[:, 0], every[:, 2], atol=0.5), (q, every)


def test_padded_items_score_exactly_zero_and_change_nothing():
    m = tiny()
    B, T = 2, 3
    x = binary(B, T)
    padded = torch.cat([x, binary(B, 2, p=0.8, seed=5)], 1)
    pmask = torch.ones(B, T + 2, dtype=torch.bool)
    pmask[:, T:] = False
    pyro.set_rng_seed(2)
    lw = m.log_weights(padded, pmask, 4, per_item=True)
    assert torch.all(lw[..., T:] == 0)
    with torch.no_grad():
        z = torch.randn(B, T + 2, m.z_dim)
        for a, b in zip(flat(conditional_parts(m, x, None, z[:, :T])),
                        flat(conditional_parts(m, padded, pmask, z))):
            torch.testing.assert_close(a, b[:, :T])
    # the site log-probs are masked: a padded item contributes nothing to the ELBO
    ctx = m.prepare(padded, pmask)
    c = ctx["c"][:, T:]
    loc, scale = m.prior_params(c)
    assert dist.Normal(loc, scale).to_event(1).mask(pmask[:, T:]).log_prob(z[:, T:]).eq(0).all()


def test_short_training_lowers_heldout_loss():
    data = make_prototype_classes(num_classes=8, per_class=10)

    def episodes(B: int, T: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        cls = torch.randint(0, data.num_classes, (B,), generator=g)
        idx = torch.randint(0, data.images_per_class, (B, T), generator=g)
        return data.to_float(data.images[cls[:, None], idx])

    m = tiny()
    loss_fn = ELBOLoss(m)
    held = episodes(8, 5, 999)

    def heldout() -> float:
        pyro.set_rng_seed(1)
        with torch.no_grad():
            return sum(float(loss_fn(held)) for _ in range(3)) / 3

    before = heldout()
    opt = torch.optim.Adam(loss_fn.parameters(), lr=3e-3)
    for step in range(40):
        loss = loss_fn(episodes(8, 5, step))
        opt.zero_grad()
        loss.backward()
        if step == 0:  # the null exemplar is trained (the first item of every episode)
            assert m.null_exemplar.grad is not None and m.null_exemplar.grad.abs().sum() > 0
        opt.step()
    after = heldout()
    assert after < 0.8 * before, (before, after)


def test_state_dict_round_trip():
    m = tiny(condition_on="last")
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)  # a different initialization
    m2 = build("cvae-small", condition_on="last", **TINY)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(m2.null_exemplar, m.null_exemplar)
    x = binary(2, 3)
    pyro.set_rng_seed(4)
    a = m.log_weights(x, None, 5, per_item=True)
    pyro.set_rng_seed(4)
    b = m2.log_weights(x, None, 5, per_item=True)
    assert torch.equal(a, b)
    torch.manual_seed(0)
    s1 = m.sample(x, 2)
    torch.manual_seed(0)
    assert torch.equal(s1, m2.sample(x, 2))
