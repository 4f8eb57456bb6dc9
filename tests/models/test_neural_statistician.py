"""Neural Statistician: contract, invariances, the ELBO by hand, estimators, a short fit."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from ppl_fewshot.models import build, default_config
from ppl_fewshot.models.neural_statistician import NeuralStatistician
from tests.conftest import TINY_NS as TINY


def binary(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < 0.3).float()


def tiny(**kw) -> NeuralStatistician:
    torch.manual_seed(0)
    return build("ns", **{**TINY, **kw})


def test_registry_defaults_follow_the_paper() -> None:
    cfg = default_config("ns")
    assert (cfg["c_dim"], cfg["z_dim"], cfg["num_z_layers"]) == (512, 16, 1)
    assert cfg["pooling"] == "mean" and cfg["sample_dropout"] == 0.0
    small = default_config("ns-small")
    assert (small["c_dim"], small["z_dim"], small["hidden"], small["channels"]) == (64, 16, 128, 16)
    m = build("ns-small")
    assert isinstance(m, NeuralStatistician) and m.has_set_latent
    assert not any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    with pytest.raises(ValueError):
        tiny(pooling="max")


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("T", [0, 1, 5, 20])
def test_sites_shapes_and_masks(T: int, layers: int) -> None:
    m = tiny(num_z_layers=layers)
    B, K = 3, 4
    x = binary(B, T, 1, 28, 28)
    mask = torch.ones(B, T, dtype=torch.bool)
    if T > 1:
        mask[0, 1:] = False  # set sizes 1, T, T-1
        mask[2, -1] = False
    ctx = m.prepare(x, mask)
    assert ctx["h"].shape == (B, T, TINY["hidden"])
    with pyro.plate("particles", K, dim=-3):
        gtr = poutine.trace(m.guide).get_trace(x, mask, ctx)
        mtr = poutine.trace(poutine.replay(m.model, trace=gtr)).get_trace(x, mask, ctx)
    names = ["z"] if layers == 1 else [f"z{i}" for i in range(1, layers + 1)]
    assert gtr.nodes["c"]["value"].shape == (K, B, 1, TINY["c_dim"])
    for tr in (gtr, mtr):
        if T == 0:
            assert not any(n in tr.nodes for n in [*names, "x"])
            continue
        for n in names:
            site = tr.nodes[n]
            assert site["value"].shape == (K, B, T, TINY["z_dim"])
            assert torch.equal(site["fn"]._mask.expand(K, B, T), mask.expand(K, B, T))
    if T > 0:
        assert mtr.nodes["x"]["is_observed"] and mtr.nodes["x"]["fn"].batch_shape == (K, B, T)
    lw = m.log_weights(x, mask, K)
    assert lw.shape == (K, B) and torch.isfinite(lw).all()
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, x, mask)
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("pooling", ["mean", "attention", "product"])
def test_context_posterior_permutation_invariant(pooling: str) -> None:
    m = tiny(pooling=pooling).eval()
    x = binary(2, 7, 1, 28, 28, seed=1)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 2] = False
    q = m.context_posterior(x, mask)
    assert q.batch_shape == (2,) and q.event_shape == (TINY["c_dim"],)
    perm = torch.tensor([3, 6, 0, 2, 5, 1, 4])
    # the statistic network is exactly invariant: the same item features in another order
    h = m.encoder(x)
    a, b = m.posterior_c(h, mask).base_dist, m.posterior_c(h[:, perm], mask[:, perm]).base_dist
    assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale)
    # through the conv encoder, whose batched float arithmetic may differ in the last bits
    # with an item's position in the batch
    qp = m.context_posterior(x[:, perm], mask[:, perm])
    assert torch.allclose(q.base_dist.loc, qp.base_dist.loc, rtol=0, atol=1e-6)
    assert torch.allclose(q.base_dist.scale, qp.base_dist.scale, rtol=0, atol=1e-6)
    # a different set gives a different posterior (the check above could fail)
    q2 = m.context_posterior(x, torch.ones(2, 7, dtype=torch.bool))
    assert not torch.allclose(q.base_dist.loc[1], q2.base_dist.loc[1])


def test_product_pooling_sharpens_with_the_set_and_rebuilds(tmp_path) -> None:
    """pooling="product": q(c | {}) is the prior, the same drawing repeated n times gives a
    narrower q(c | X) with a larger KL as n grows, the ELBO runs for set sizes 0-20, and the
    model rebuilds from its config and state dict."""
    m = tiny(pooling="product").eval()
    x = binary(1, 1, 1, 28, 28, seed=6).expand(4, 20, 1, 28, 28)
    mask = torch.zeros(4, 20, dtype=torch.bool)
    for i, n in enumerate((1, 2, 5, 20)):
        mask[i, :n] = True
    q = m.context_posterior(x, mask)
    prior = dist.Normal(torch.zeros(TINY["c_dim"]), 1.0).to_event(1)
    kl = torch.distributions.kl_divergence(q, prior)
    assert (q.base_dist.scale[1:] < q.base_dist.scale[:-1]).all() and (kl[1:] > kl[:-1]).all()
    q0 = m.context_posterior(x[:, :0])
    assert torch.equal(q0.base_dist.loc, torch.zeros(4, TINY["c_dim"]))
    assert torch.allclose(q0.base_dist.scale, torch.ones(4, TINY["c_dim"]), atol=1e-3)
    for T in (0, 1, 5, 20):
        loss = Trace_ELBO().differentiable_loss(m.model, m.guide, x[:, :T].contiguous())
        assert torch.isfinite(loss)
    torch.save(m.state_dict(), tmp_path / "ns.pt")
    m2 = build("ns", **m.config()).eval()
    m2.load_state_dict(torch.load(tmp_path / "ns.pt", weights_only=True))
    assert torch.equal(m2.context_posterior(x, mask).base_dist.loc, q.base_dist.loc)
    with pytest.raises(ValueError, match="'mean', 'attention' or 'product'"):
        tiny(pooling="max")


def test_padding_changes_nothing() -> None:
    m = tiny().eval()
    x = binary(2, 5, 1, 28, 28, seed=2)
    pad_a = torch.cat([x, binary(2, 3, 1, 28, 28, seed=3)], 1)
    pad_b = torch.cat([x, torch.rand(2, 3, 1, 28, 28)], 1)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, :5] = True
    q, qa = m.context_posterior(x), m.context_posterior(pad_a, mask)
    assert torch.allclose(q.base_dist.loc, qa.base_dist.loc, atol=1e-6)
    assert torch.allclose(q.base_dist.scale, qa.base_dist.scale, atol=1e-6)
    out = []
    for pad in (pad_a, pad_b):
        pyro.set_rng_seed(5)
        lw = m.log_weights(pad, mask, 3)
        pyro.set_rng_seed(5)
        loss = TraceMeanField_ELBO().loss(m.model, m.guide, pad, mask)
        out.append((lw, loss))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-4)
    assert out[0][1] == pytest.approx(out[1][1], abs=1e-3)
    # the junk is really there: unmasking it changes the weights
    pyro.set_rng_seed(5)
    assert not torch.allclose(m.log_weights(pad_b, None, 3), out[1][0], atol=1.0)


def _normal_logpdf(v, loc, scale):
    return (-0.5 * ((v - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def _kl_normal(m1, s1, m2, s2):
    return (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1)


@pytest.mark.parametrize("layers", [1, 2])
def test_elbo_matches_hand_computation(layers: int) -> None:
    m = tiny(num_z_layers=layers).eval()
    x = binary(2, 4, 1, 28, 28, seed=4)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    names = ["z"] if layers == 1 else ["z1", "z2"]
    pyro.set_rng_seed(11)
    loss_mf = TraceMeanField_ELBO().loss(m.model, m.guide, x, mask)
    pyro.set_rng_seed(11)
    loss_mc = Trace_ELBO().loss(m.model, m.guide, x, mask)
    pyro.set_rng_seed(11)
    tr = poutine.trace(m.guide).get_trace(x, mask)
    c = tr.nodes["c"]["value"]  # [B, 1, C]
    zs = [tr.nodes[n]["value"] for n in names]  # bottom to top, [B, T, Dz]
    with torch.no_grad():
        qc = m.context_posterior(x, mask).base_dist
        h = m.encoder(x)
        logits = m.decoder(torch.cat([*zs, c.expand(2, 4, -1)], -1))
        rec = (x * logits - F.softplus(logits)).sum((-1, -2, -3))  # [B, T]
        kl_c = _kl_normal(qc.loc, qc.scale, torch.zeros(3), torch.ones(3))
        mc_c = _normal_logpdf(c[:, 0], 0 * qc.loc, 1 + 0 * qc.loc) - _normal_logpdf(
            c[:, 0], qc.loc, qc.scale
        )
        kl_z, mc_z = torch.zeros(2, 4), torch.zeros(2, 4)
        for layer in range(layers, 0, -1):
            above = zs[layer] if layer < layers else None
            q = m.posterior_z(layer, h, c, above).base_dist
            p = m.prior_z(layer, c, above).base_dist
            z = zs[layer - 1]
            kl_z += _kl_normal(q.loc, q.scale, p.loc, p.scale)
            mc_z += _normal_logpdf(z, p.loc, p.scale) - _normal_logpdf(z, q.loc, q.scale)
        elbo_mf = (rec * mask).sum() - kl_c.sum() - (kl_z * mask).sum()
        elbo_mc = (rec * mask).sum() + mc_c.sum() + (mc_z * mask).sum()
    assert loss_mf == pytest.approx(-elbo_mf.item(), rel=1e-5)
    assert loss_mc == pytest.approx(-elbo_mc.item(), rel=1e-5)
    # the importance weight of one particle is the one-sample ELBO
    pyro.set_rng_seed(11)
    assert m.log_weights(x, mask, 1).sum().item() == pytest.approx(-loss_mc, rel=1e-5)


def test_vectorized_log_weights_match_pyro_elbo() -> None:
    m = tiny(num_z_layers=2).eval()
    x = binary(3, 5, 1, 28, 28, seed=6)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    pyro.set_rng_seed(3)
    lw = m.log_weights(x, mask, 6)
    pyro.set_rng_seed(3)
    elbo = Trace_ELBO(num_particles=6, vectorize_particles=True, max_plate_nesting=3)
    loss = elbo.loss(m.model, m.guide, x, mask)
    assert -lw.sum(1).mean().item() == pytest.approx(loss, rel=1e-5)


def test_base_estimators_are_consistent() -> None:
    m = tiny().eval()
    x = binary(2, 3, 1, 28, 28, seed=7)
    pyro.set_rng_seed(0)
    # log p({}) = log E_q[p(c) / q(c|{})] = 0 exactly: checks the c densities
    empty = m.log_marginal(x[:, :0], num_particles=4000, chunk=1000)
    assert empty.shape == (2,) and empty.abs().max() < 0.1
    lm = m.log_marginal(x, num_particles=1000, chunk=1000)
    elbo = m.log_weights(x, None, 1000).mean(0)
    assert (lm > elbo).all()  # Jensen, with a margin far above the MC error
    cll = m.conditional_log_likelihoods(x, num_particles=1000, chunk=1000)
    assert cll.shape == (2, 3)
    assert torch.allclose(cll.sum(1), lm, atol=1.0)
    lp = m.log_predictive(x[:, 2:], x[:, :2], num_particles=1000)
    assert lp.shape == (2, 1)
    assert torch.allclose(lp[:, 0], cll[:, 2], atol=1.5)
    lp0 = m.log_predictive(x[:, :1], x[:, :0], num_particles=1000)
    assert torch.allclose(lp0[:, 0], cll[:, 0], atol=1.0)
    plug = m.log_predictive_plugin(x[:, 2:], x[:, :2], num_particles=50, chunk=20)
    assert plug.shape == (2, 1) and torch.isfinite(plug).all()


def test_conditionals_with_padding_in_the_middle() -> None:
    m = tiny().eval()
    x = binary(2, 5, 1, 28, 28, seed=10)
    mask = torch.tensor([[True, False, True, True, False], [False, True, True, False, False]])
    pyro.set_rng_seed(0)
    cll = m.conditional_log_likelihoods(x, mask, num_particles=500, chunk=500)
    assert torch.equal(cll[~mask], torch.zeros(5))
    lm = m.log_marginal(x, mask, num_particles=500, chunk=500)
    assert torch.allclose(cll.sum(1), lm, atol=1.0)
    packed = torch.stack([x[0, [0, 2, 3]], x[1, [1, 2, 0]]])
    pmask = torch.tensor([[True, True, True], [True, True, False]])
    ref = m.conditional_log_likelihoods(packed, pmask, num_particles=500, chunk=500)
    assert torch.allclose(cll[mask], ref[pmask], atol=1.0)


def test_dropout_mask_never_empties_a_set() -> None:
    m = tiny(sample_dropout=0.9)
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(200, 6, generator=g) < 0.5
    mask[:5] = False
    keep = m.dropout_mask(mask)
    assert not (keep & ~mask).any()
    assert torch.equal(keep.any(1), mask.any(1))
    assert keep.sum() < 0.5 * mask.sum()
    x = binary(4, 6, 1, 28, 28, seed=8)
    q = m.context_posterior(x)
    tr = poutine.trace(m.guide).get_trace(x)
    assert not torch.allclose(tr.nodes["c"]["fn"].base_dist.loc[:, 0], q.base_dist.loc)
    m.eval()
    tr = poutine.trace(m.guide).get_trace(x)
    assert torch.equal(tr.nodes["c"]["fn"].base_dist.loc[:, 0], q.base_dist.loc)


def test_scale_floor_bounds_every_normal() -> None:
    floor = 0.5
    m = tiny(num_z_layers=2, min_scale=floor)
    with torch.no_grad():  # push every raw scale far below zero: softplus(raw) ~ 0
        for net in [m.statistic, *m.prior_nets, *m.posterior_nets]:
            last = [mod for mod in net.modules() if isinstance(mod, torch.nn.Linear)][-1]
            last.bias[last.out_features // 2 :] = -50.0
    x = binary(2, 3, 1, 28, 28, seed=4)
    gtr = poutine.trace(m.guide).get_trace(x)
    mtr = poutine.trace(poutine.replay(m.model, trace=gtr)).get_trace(x)
    for tr in (gtr, mtr):
        for name in ("c", "z1", "z2"):
            fn = tr.nodes[name]["fn"]
            while not hasattr(fn, "scale"):  # Masked / Independent wrappers
                fn = fn.base_dist
            scale = fn.scale
            if name == "c" and tr is mtr:
                assert torch.equal(scale, torch.ones_like(scale))  # p(c) is N(0, I)
            else:
                assert torch.allclose(scale, torch.full_like(scale, floor))
    with pytest.raises(ValueError, match="min_scale"):
        tiny(min_scale=0.0)


def test_encoder_depth_adds_same_width_convolutions() -> None:
    def convs(m):
        return [mod for mod in m.encoder.modules() if isinstance(mod, torch.nn.Conv2d)]

    shallow, deep = tiny(), tiny(encoder_depth=3)
    assert len(convs(shallow)) == 3 and len(convs(deep)) == 9
    assert [c.stride[0] for c in convs(deep)] == [2, 1, 1] * 3
    assert all(c.in_channels == c.out_channels for c in convs(deep) if c.stride[0] == 1)
    x = binary(2, 4, 1, 28, 28, seed=5)
    assert deep.prepare(x)["h"].shape == shallow.prepare(x)["h"].shape == (2, 4, TINY["hidden"])
    # depth 1 keeps the parameter names of the encoder before the option existed
    assert [k for k in shallow.encoder.state_dict()] == [
        f"net.{i}.{w}" for i in (0, 2, 4, 7) for w in ("weight", "bias")
    ]
    with pytest.raises(ValueError, match="depth"):
        tiny(encoder_depth=0)


def test_layer_norm_normalizes_each_item_alone() -> None:
    def norms(m):
        kinds = (torch.nn.LayerNorm, torch.nn.GroupNorm)
        return [mod for mod in m.modules() if isinstance(mod, kinds)]

    plain, m = tiny(encoder_depth=2), tiny(encoder_depth=2, num_z_layers=2, norm="layer")
    assert not norms(plain) and len(norms(m)) == 6 + 1 + 2 + 2 * 2 * 2 + 3  # enc, stat, z nets, dec
    assert build("ns", **m.config()).config()["norm"] == "layer"
    old_name = tiny(encoder_depth=2, num_z_layers=2, layer_norm=True)  # the setting's old name
    assert old_name.state_dict().keys() == m.state_dict().keys()
    with pytest.raises(ValueError, match="contradicts"):
        tiny(layer_norm=True, norm="batch")
    with pytest.raises(ValueError, match="unknown norm"):
        tiny(norm="group")
    # without it the decoder keeps the parameter names of checkpoints made before the option
    assert [k for k in plain.decoder.state_dict() if k.startswith("net.")] == [
        f"net.{i}.{w}" for i in (0, 2, 4) for w in ("weight", "bias")
    ]
    x = binary(3, 5, 1, 28, 28, seed=11)
    y = x.clone()
    y[1:] = binary(2, 5, 1, 28, 28, seed=12)  # other sets of the batch change
    q, qy = m.context_posterior(x), m.context_posterior(y)
    assert torch.equal(m.prepare(x)["h"][0], m.prepare(y)["h"][0])
    assert torch.equal(q.base_dist.loc[0], qy.base_dist.loc[0])
    assert not torch.allclose(q.base_dist.loc[1], qy.base_dist.loc[1])
    perm = torch.tensor([4, 0, 3, 1, 2])  # still permutation invariant (the norms' reductions
    qp = m.context_posterior(x[:, perm])  # may round differently at another batch position)
    assert torch.allclose(qp.base_dist.loc, q.base_dist.loc, atol=1e-6, rtol=0)
    pyro.set_rng_seed(3)
    lw_train = m.train().log_weights(x, None, 4)
    pyro.set_rng_seed(3)
    assert torch.equal(m.eval().log_weights(x, None, 4), lw_train)  # no batch statistics
    loss = Trace_ELBO().differentiable_loss(m.model, m.guide, x)
    loss.backward()
    assert all(mod.weight.grad is not None for mod in norms(m))


def test_batch_norm_couples_training_batches_only(tmp_path) -> None:
    bn = torch.nn.modules.batchnorm._BatchNorm
    m = tiny(encoder_depth=2, num_z_layers=2, norm="batch")
    assert len([mod for mod in m.modules() if isinstance(mod, bn)]) == 6 + 1 + 2 + 2 * 2 * 2 + 3
    x = binary(3, 5, 1, 28, 28, seed=11)
    y = x.clone()
    y[1:] = binary(2, 5, 1, 28, 28, seed=12)  # other sets of the batch change
    before = m.encoder.net[1].running_mean.clone()
    loc = lambda q: q.base_dist.loc  # noqa: E731
    # training: batch statistics, so a set's posterior depends on the other sets
    assert not torch.allclose(loc(m.train().context_posterior(x))[0],
                              loc(m.context_posterior(y))[0])
    assert not torch.equal(m.encoder.net[1].running_mean, before)  # running averages move
    Trace_ELBO().differentiable_loss(m.model, m.guide, x).backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad and p.dim())
    # evaluation: running averages, so test sets are scored independently, in any order
    m.eval()
    q = m.context_posterior(x)
    assert torch.equal(loc(q)[0], loc(m.context_posterior(y))[0])
    perm = torch.tensor([4, 0, 3, 1, 2])
    assert torch.allclose(loc(m.context_posterior(x[:, perm])), loc(q), atol=1e-6, rtol=0)
    pyro.set_rng_seed(3)
    lw = m.log_weights(x, None, 4)
    # the running averages travel with the checkpoint
    torch.save(m.state_dict(), tmp_path / "bn.pt")
    m2 = build("ns", **m.config())
    m2.load_state_dict(torch.load(tmp_path / "bn.pt", weights_only=True))
    m2.eval()
    pyro.set_rng_seed(3)
    assert torch.equal(m2.log_weights(x, None, 4), lw)


def test_state_dict_round_trip_and_sampling(tmp_path) -> None:
    m = tiny(num_z_layers=2).eval()
    path = tmp_path / "ns.pt"
    torch.save(m.state_dict(), path)
    torch.manual_seed(1)
    m2 = build("ns", **m.config()).eval()
    x = binary(2, 4, 1, 28, 28, seed=9)
    assert not torch.equal(m2.features(x), m.features(x))
    m2.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(m2.features(x), m.features(x))
    pyro.set_rng_seed(2)
    a = m.log_weights(x, None, 3)
    pyro.set_rng_seed(2)
    assert torch.equal(a, m2.log_weights(x, None, 3))
    s = m.sample(x[:, :0], 5)
    assert s.shape == (2, 5, 1, 28, 28) and (s >= 0).all() and (s <= 1).all()
    masked = m.sample(x, 3, torch.zeros(2, 4, dtype=torch.bool))
    assert masked.shape == (2, 3, 1, 28, 28)


def test_temperature_narrows_p_z_given_c_only(monkeypatch) -> None:
    m = tiny(num_z_layers=2).eval()
    x = binary(2, 4, 1, 28, 28, seed=9)
    N = 3000

    def prior_z(layer, c, z_above):  # p(z_l | ...) = N(l, 1), whatever c and z_above are
        lead = c.shape[:-1] if z_above is None else z_above.shape[:-1]
        loc = torch.full((*lead, m.z_dim), float(layer))
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)

    seen = []

    def likelihood(zs, c):
        seen.append((zs, c))
        return dist.Bernoulli(probs=torch.full((*zs[0].shape[:-1], 1, 28, 28), 0.5)).to_event(3)

    monkeypatch.setattr(m, "prior_z", prior_z)
    monkeypatch.setattr(m, "likelihood", likelihood)
    for t in (1.0, 0.2):
        torch.manual_seed(3)
        m.sample(x, N, temperature=t)
    (z1, c1), (z2, c2) = seen
    for layer in (1, 2):
        assert (z1[layer - 1] - layer).std().item() == pytest.approx(1.0, rel=0.03)
        assert (z2[layer - 1] - layer).std().item() == pytest.approx(0.2, rel=0.03)
    assert torch.equal(c1, c2)  # the same c ~ q(c | X): the character is not tempered
    with pytest.raises(ValueError, match="temperature"):
        m.sample(x, 2, temperature=0)


# ------------------------------------------------------------ a short training run
def _prototypes(n: int, g: torch.Generator) -> torch.Tensor:
    coarse = (torch.rand(n, 1, 7, 7, generator=g) < 0.4).float()
    return coarse.repeat_interleave(4, -1).repeat_interleave(4, -2)


def _sets(protos, cls, T, g, flip=0.05):
    x = protos[cls].unsqueeze(1).expand(len(cls), T, *protos.shape[1:])
    return torch.where(torch.rand(x.shape, generator=g) < flip, 1 - x, x)


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    protos = _prototypes(10, g)
    pyro.set_rng_seed(0)
    m = build("ns", c_dim=16, z_dim=4, hidden=64, channels=8, sample_dropout=0.2)
    held = _sets(protos, torch.arange(10).repeat(3), 5, torch.Generator().manual_seed(1))
    elbo = Trace_ELBO()

    def held_loss() -> float:
        m.eval()
        pyro.set_rng_seed(1)
        with torch.no_grad():
            out = elbo.loss(m.model, m.guide, held) / len(held)
        m.train()
        return out

    before = held_loss()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    for _ in range(100):
        x = _sets(protos, torch.randint(10, (16,), generator=g), 5, g)
        loss = elbo.differentiable_loss(m.model, m.guide, x) / 16
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = held_loss()
    return m.eval(), protos, before, after


def test_training_lowers_held_out_loss(trained) -> None:
    m, protos, before, after = trained
    assert after < 0.6 * before
    # near the noise floor: 5 items x 784 pixels x H(0.05) nats is about 781 nats
    assert after < 1200


def test_min_kl_classification_beats_chance(trained) -> None:
    m, protos, _, _ = trained
    g = torch.Generator().manual_seed(2)
    B, N = 20, 5
    classes = torch.stack([torch.randperm(10, generator=g)[:N] for _ in range(B)])  # [B, N]
    support = _sets(protos, classes.reshape(-1), 1, g).reshape(B, N, 1, 1, 28, 28)
    query = _sets(protos, classes.reshape(-1), 1, g).reshape(B, N, 1, 28, 28)
    pred = m.classify_min_kl(query, support)
    assert pred.shape == (B, N)
    acc = (pred == torch.arange(N)).float().mean().item()
    assert acc > 0.6  # chance is 0.2
    single = m.classify_min_kl(query[0], support[0])
    assert torch.equal(single, pred[0])
    # classes never seen in training: the statistic network generalizes
    new = _prototypes(N, g)
    support = _sets(new, torch.arange(N).repeat(B), 1, g).reshape(B, N, 1, 1, 28, 28)
    query = _sets(new, torch.arange(N).repeat(B), 1, g).reshape(B, N, 1, 28, 28)
    assert (m.classify_min_kl(query, support) == torch.arange(N)).float().mean() > 0.5


def test_trained_predictives_prefer_the_context_class(trained) -> None:
    m, protos, _, _ = trained
    g = torch.Generator().manual_seed(3)
    ctx = _sets(protos, torch.tensor([0, 1]), 4, g)
    own = _sets(protos, torch.tensor([0, 1]), 1, g)[:, 0]
    other = _sets(protos, torch.tensor([1, 0]), 1, g)[:, 0]
    query = torch.stack([own, other], 1)  # [B, 2]: a new item of the own class, of the other
    plug = m.log_predictive_plugin(query, ctx, num_particles=20)
    assert (plug[:, 0] > plug[:, 1] + 50).all()
    s = m.sample(ctx, 4)
    err_own = (s - protos[[0, 1]].unsqueeze(1)).abs().mean((1, 2, 3, 4))
    err_other = (s - protos[[1, 0]].unsqueeze(1)).abs().mean((1, 2, 3, 4))
    assert (err_own < err_other).all()
