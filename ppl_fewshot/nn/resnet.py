"""Residual convolutional encoder and decoder for 28x28 images, in the GMN paper's layout.

Bartunov & Vetrov [1] build every GMN network from small residual "sections": a strided
convolution changes the resolution, one residual block (a 3x3 convolution added to its input)
refines it, and a shortcut (a 1x1 convolution, pooled or resized to the new resolution) is
added around both; PReLU activations throughout. The encoder goes 28 -> 13 -> 6 -> 3 with 16,
32, 32 channels (a 288-unit feature map), the decoder back 3 -> 6 -> 13 -> 28 with 32, 16, 8
channels and a 1x1 convolution to the logits. These are narrower than :mod:`ppl_fewshot.nn.conv`'s
networks (32-64-128 channels), so the pair tells whether the architecture or the width matters
(findings 19 and 27).

The modules broadcast over leading dimensions like those of :mod:`ppl_fewshot.nn.conv`.

References:
    [1] Bartunov & Vetrov, "Few-shot generative modelling with generative matching networks",
        AISTATS 2018 (appendix: network architectures).
    [2] He et al., "Deep residual learning for image recognition", CVPR 2016; PReLU:
        He et al., "Delving deep into rectifiers", ICCV 2015.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ppl_fewshot.nn.conv import ConvDecoder, ConvEncoder, _cpu_channels_last, _flat_apply

#: The encoder's kernels: stride-2 valid convolutions of kernels 4, 3, 2 take 28 -> 13 -> 6 -> 3
#: (the decoder's transposed ones, in reverse, 3 -> 6 -> 13 -> 28); ``_MAP`` is the smallest map.
_KERNELS = (4, 3, 2)
_MAP = 3


class _Section(nn.Module):
    """One resolution change: ``prelu(conv_s(x))``, a residual block, plus a 1x1 shortcut.

    ``up=False``: a stride-2 valid convolution of kernel ``k``; the shortcut is average-pooled
    by the same window. ``up=True``: a stride-2 transposed convolution; the shortcut is
    resized (bilinear) to the output size.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, up: bool) -> None:
        super().__init__()
        conv = nn.ConvTranspose2d if up else nn.Conv2d
        self.scale = nn.Sequential(conv(c_in, c_out, kernel, stride=2), nn.PReLU(c_out))
        self.block = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act = nn.PReLU(c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)
        self.kernel, self.up = kernel, up

    def forward(self, x: Tensor) -> Tensor:
        h = self.scale(x)
        h = self.act(h + self.block(h))
        s = self.shortcut(x)
        if self.up:
            s = F.interpolate(s, size=h.shape[-2:], mode="bilinear", align_corners=False)
        else:
            s = F.avg_pool2d(s, self.kernel, stride=2)
        return h + s


class ResEncoder(nn.Module):
    """``[..., C, 28, 28] -> [..., out_dim]``: three residual sections and a linear map.

    Args:
        out_dim: size of the feature vector (PReLU-activated, like :class:`ConvEncoder`'s).
        channels: channels of the three sections (the paper: 16, 32, 32).
        in_channels: image channels.
    """

    def __init__(
        self, out_dim: int = 288, channels: tuple[int, int, int] = (16, 32, 32),
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        c_in, sections = in_channels, []
        for c, k in zip(channels, _KERNELS):
            sections.append(_Section(c_in, c, k, up=False))
            c_in = c
        self.net = nn.Sequential(
            *sections, nn.Flatten(), nn.Linear(c_in * _MAP**2, out_dim), nn.PReLU()
        )

    def _forward(self, x: Tensor) -> Tensor:
        return self.net(_cpu_channels_last(x))

    def forward(self, x: Tensor) -> Tensor:
        return _flat_apply(self._forward, x, 3)


class ResDecoder(nn.Module):
    """``[..., in_dim] -> [..., C, 28, 28]`` Bernoulli logits: a linear map to a 3x3 map, three
    upsampling residual sections and a 1x1 convolution.

    Args:
        in_dim: size of the input vector.
        channels: channels of the three sections from coarse to fine (the paper: 32, 16, 8).
        out_channels: image channels.
    """

    def __init__(
        self, in_dim: int, channels: tuple[int, int, int] = (32, 16, 8), out_channels: int = 1
    ) -> None:
        super().__init__()
        self.c0 = channels[0]
        self.fc = nn.Linear(in_dim, self.c0 * _MAP**2)
        c_in, sections = self.c0, []
        for c, k in zip(channels, reversed(_KERNELS)):
            sections.append(_Section(c_in, c, k, up=True))
            c_in = c
        self.net = nn.Sequential(*sections, nn.Conv2d(c_in, out_channels, 1))

    def _forward(self, h: Tensor) -> Tensor:
        y = self.fc(h).reshape(-1, self.c0, _MAP, _MAP)
        return self.net(_cpu_channels_last(y))

    def forward(self, h: Tensor) -> Tensor:
        return _flat_apply(self._forward, h, 1)


ARCHS = ("conv", "resnet")


def _check_arch(arch: str, channels: int) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; use one of {ARCHS}")
    if arch == "resnet" and channels < 2:
        raise ValueError(f"arch='resnet' needs channels >= 2, got {channels}")


def image_encoder(arch: str, out_dim: int, channels: int, in_channels: int = 1) -> nn.Module:
    """An encoder ``[..., C, 28, 28] -> [..., out_dim]`` of the named architecture.

    ``"conv"``: :class:`~ppl_fewshot.nn.conv.ConvEncoder` (ELU; channels c, 2c, 4c).
    ``"resnet"``: :class:`ResEncoder` (PReLU; c, 2c, 2c), the GMN paper's layout at
    ``channels=16`` [1].
    """
    _check_arch(arch, channels)
    if arch == "conv":
        return ConvEncoder(out_dim, channels, in_channels=in_channels)
    return ResEncoder(out_dim, (channels, 2 * channels, 2 * channels), in_channels=in_channels)


def image_decoder(
    arch: str, in_dim: int, channels: int, out_channels: int = 1, skip_channels: int = 0
) -> nn.Module:
    """A decoder ``[..., in_dim] -> [..., C, 28, 28]`` (Bernoulli logits) of the named
    architecture: :class:`~ppl_fewshot.nn.conv.ConvDecoder` (``"conv"``; channels 4c, 2c, c;
    it alone takes ``skip_channels``) or :class:`ResDecoder` (``"resnet"``; 2c, c, c/2).
    """
    _check_arch(arch, channels)
    if arch == "conv":
        return ConvDecoder(in_dim, channels, out_channels, skip_channels=skip_channels)
    if skip_channels:
        raise ValueError("a skip input (the image read) needs arch='conv'")
    return ResDecoder(in_dim, (2 * channels, channels, channels // 2), out_channels)
