"""The image networks of ``ppl_fewshot.nn``: shapes, broadcasting, the architecture switch."""

from __future__ import annotations

import pytest
import torch

from ppl_fewshot.nn import (
    ConvDecoder,
    ConvEncoder,
    ResDecoder,
    ResEncoder,
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
