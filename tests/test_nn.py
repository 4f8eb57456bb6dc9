"""``ppl_fewshot.nn``: image networks (shapes, broadcasting, the architecture switch) and the
Gaussian product pooling (against sequential conjugate updates)."""

from __future__ import annotations

import pytest
import torch

from ppl_fewshot.nn import (
    ConvDecoder,
    ConvEncoder,
    GaussianProductEncoder,
    ResDecoder,
    ResEncoder,
    gaussian_product,
    image_decoder,
    image_encoder,
)


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_image_networks_broadcast_over_leading_dims(arch: str) -> None:
    torch.manual_seed(0)
    enc, dec = image_encoder(arch, 40, channels=8), image_decoder(arch, 7, channels=8)
    x = (torch.rand(2, 3, 1, 28, 28) < 0.2).float()
    h = enc(x)
    assert h.shape == (2, 3, 40)
    # each item on its own: the leading dims are only a batch
    assert torch.allclose(h[1, 2], enc(x[1, 2]), atol=1e-5)
    z = torch.randn(4, 5, 7)
    logits = dec(z)
    assert logits.shape == (4, 5, 1, 28, 28)
    assert torch.allclose(logits[3, 1], dec(z[3, 1]), atol=1e-5)


def test_image_networks_types_and_errors() -> None:
    enc, dec = image_encoder("resnet", 288, 16), image_decoder("resnet", 50, 16)
    assert isinstance(enc, ResEncoder) and isinstance(dec, ResDecoder)
    # the paper's layout: 16-32-32 channels down, 32-16-8 up
    assert [m.out_channels for m in enc.modules() if isinstance(m, torch.nn.Conv2d)
            and m.kernel_size != (1, 1) and m.stride == (2, 2)] == [16, 32, 32]
    assert [m.out_channels for m in dec.modules()
            if isinstance(m, torch.nn.ConvTranspose2d)] == [32, 16, 8]
    enc, dec = image_encoder("conv", 64, 4), image_decoder("conv", 8, 4, skip_channels=1)
    assert isinstance(enc, ConvEncoder) and isinstance(dec, ConvDecoder)
    with pytest.raises(ValueError, match="unknown arch"):
        image_encoder("mlp", 64, 4)
    with pytest.raises(ValueError, match="channels >= 2"):
        image_decoder("resnet", 8, 1)
    with pytest.raises(ValueError, match="image read"):
        image_decoder("resnet", 8, 4, skip_channels=1)


def test_resnet_decoder_learns_a_fixed_image() -> None:
    """Gradients reach every layer: a few Adam steps fit one binary image from one code."""
    torch.manual_seed(0)
    dec = ResDecoder(4, (8, 4, 2))
    target = (torch.rand(1, 28, 28) < 0.1).float()
    z = torch.randn(4)
    opt = torch.optim.Adam(dec.parameters(), 1e-2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    first = bce(dec(z), target).item()
    for _ in range(100):
        loss = bce(dec(z), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.parameters())
    assert loss.item() < 0.5 * first


def test_gaussian_product_is_the_conjugate_posterior() -> None:
    """c ~ N(0, 1), y_t ~ N(c, 1 / p_t): the product equals Bayes' rule applied one item at a
    time (a Kalman update per present item); padded items, whatever they hold, count nothing."""
    g = torch.Generator().manual_seed(0)
    B, T, D = 3, 6, 4
    y = 3 * torch.randn(B, T, D, generator=g)
    p = torch.rand(B, T, D, generator=g) * 5 + 0.1
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2] = False  # the empty set
    loc, scale = gaussian_product(y, p, mask)
    for b in range(B):
        m, v = torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)
        for t in range(T):
            if mask[b, t]:
                pt, yt = p[b, t].double(), y[b, t].double()
                v_new = 1 / (1 / v + pt)
                m, v = v_new * (m / v + pt * yt), v_new
        assert torch.allclose(loc[b].double(), m, atol=1e-5)
        assert torch.allclose(scale[b].double(), v.sqrt(), atol=1e-6)
    assert torch.equal(loc[2], torch.zeros(D)) and torch.equal(scale[2], torch.ones(D))
    perm = torch.tensor([5, 2, 0, 4, 1, 3])
    loc_p, scale_p = gaussian_product(y[:, perm], p[:, perm], mask[:, perm])
    assert torch.equal(loc, loc_p) and torch.equal(scale, scale_p)
    # particles in front broadcast against the [B, T] mask
    loc_k, _ = gaussian_product(y.expand(2, B, T, D), p.expand(2, B, T, D), mask)
    assert torch.equal(loc_k[1], loc)


def test_gaussian_product_encoder_sharpens_with_the_count() -> None:
    """The same drawing n times: the posterior scale falls in every unit as n grows, and
    KL(q || N(0, I)) rises; an empty set gives the prior."""
    torch.manual_seed(0)
    enc = GaussianProductEncoder(5, 3, hidden=8)
    h = torch.randn(1, 1, 5).expand(1, 20, 5)
    mask = torch.zeros(4, 20, dtype=torch.bool)
    for i, n in enumerate((1, 2, 5, 20)):
        mask[i, :n] = True
    loc, scale = enc(h.expand(4, 20, 5), mask)
    assert (scale[1:] < scale[:-1]).all()
    kl = (0.5 * (scale**2 + loc**2 - 1) - scale.log()).sum(-1)
    assert (kl[1:] > kl[:-1]).all()
    loc0, scale0 = enc(h[:, :0], torch.zeros(1, 0, dtype=torch.bool))
    assert torch.equal(loc0, torch.zeros(1, 3)) and torch.equal(scale0, torch.ones(1, 3))
