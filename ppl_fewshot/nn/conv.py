"""Convolutional encoders and decoders for 28x28 images, broadcasting over leading dims."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def _cpu_channels_last(x: Tensor) -> Tensor:
    """NHWC on the CPU, where oneDNN convolutions run 1.5-1.9x faster in that layout (same
    numbers up to float rounding); GPU tensors are left as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def _flat_apply(module: nn.Module, x: Tensor, n_event: int) -> Tensor:
    """Apply ``module`` to ``x[..., *event]`` with ``n_event`` trailing dims, any leading dims."""
    lead = x.shape[: x.dim() - n_event]
    y = module(x.reshape(-1, *x.shape[x.dim() - n_event :]))
    return y.reshape(*lead, *y.shape[1:])


NORMS = ("none", "layer", "batch")


class FlatBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` over the last dim of ``x[..., C]``: every leading dim is the batch."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _norm(channels: int, norm: str, conv: bool = False) -> list[nn.Module]:
    """The normalization after a hidden layer: ``"none"``, ``"layer"`` or ``"batch"``.

    ``"layer"``: ``LayerNorm`` over a vector, ``GroupNorm(1, C)`` over a feature map (the
    same normalization over channels and pixels); each item is normalized by its own
    statistics, so nothing couples the items or sets of a batch, and training and
    evaluation compute the same function.

    ``"batch"``: batch normalization [Ioffe & Szegedy 2015], as in the Neural Statistician
    [Edwards & Storkey 2017]: in training, statistics over every item (and particle) of the
    batch, so the sets of a training batch are coupled and padded items count too; in
    evaluation (``model.eval()``), the running averages, so nothing couples the sets at
    test time.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")
    if norm == "none":
        return []
    if norm == "batch":
        return [nn.BatchNorm2d(channels) if conv else FlatBatchNorm1d(channels)]
    return [nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)]


def batch_norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-normalization layers of ``module`` (empty unless built with ``norm="batch"``)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[int]:
    """Within the block, every batch-norm layer of ``module`` normalizes with the statistics
    of the batch it is given, in training and in evaluation mode alike, and leaves its
    running averages untouched (they are restored on exit, also after an exception).

    This is *transductive* batch normalization: an evaluation that feeds a few-shot task's
    support sets in one call and its queries in another normalizes each by that task's own
    statistics, as code that evaluates a batch-norm network in training mode does without
    saying so. Measuring both shows how much of an accuracy comes from it
    (``ppl-fewshot evaluate --norm-stats task``); see Bronskill et al., "TaskNorm:
    Rethinking batch normalization for meta-learning", ICML 2020, on transductive batch
    norm in few-shot evaluation.

    Yields:
        the number of batch-norm layers switched (0: the block changes nothing).
    """
    layers = batch_norm_layers(module)
    saved = [(m.running_mean, m.running_var) for m in layers]
    try:
        for m in layers:  # no buffers: _BatchNorm.forward uses the batch's statistics
            m.running_mean, m.running_var = None, None
        yield len(layers)
    finally:
        for m, (mean, var) in zip(layers, saved):
            m.running_mean, m.running_var = mean, var


class MLP(nn.Module):
    """A multilayer perceptron ``in_dim -> hidden* -> out_dim`` with ELU activations.

    ``norm`` (``"none"``, ``"layer"``, ``"batch"``; see :func:`_norm`) goes before each
    hidden activation (not on the output).
    """

    def __init__(
        self, in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int,
        norm: str = "none",
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), *_norm(b, norm), nn.ELU()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvEncoder(nn.Module):
    """``[..., 1, 28, 28] -> [..., out_dim]``: three stride-2 stages and a linear map.

    Each stage is a stride-2 3x3 convolution followed by ``depth - 1`` stride-1 3x3
    convolutions at the same width (the Neural Statistician's Omniglot encoder has three
    convolutions per resolution [Edwards & Storkey 2017, appendix]; ``depth=1`` is the
    three-layer encoder of the small configurations).

    Args:
        out_dim: size of the feature vector.
        channels: channels of the first convolution (doubled at each stride).
        in_channels: image channels.
        depth: convolutions per resolution (>= 1).
        norm: normalization before every activation: ``"none"``, ``"layer"`` (per item:
            ``GroupNorm(1, C)`` on feature maps, ``LayerNorm`` on the feature vector) or
            ``"batch"`` (see :func:`_norm`).
    """

    def __init__(
        self, out_dim: int = 256, channels: int = 32, in_channels: int = 1, depth: int = 1,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in (channels, 2 * channels, 4 * channels):  # 28 -> 14 -> 7 -> 4
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), *_norm(c, norm, True),
                       nn.ELU()]
            for _ in range(depth - 1):
                layers += [nn.Conv2d(c, c, 3, padding=1), *_norm(c, norm, True), nn.ELU()]
            c_in = c
        layers += [nn.Flatten(), nn.Linear(4 * channels * 4 * 4, out_dim),
                   *_norm(out_dim, norm), nn.ELU()]
        self.net = nn.Sequential(*layers)

    def _forward(self, x: Tensor) -> Tensor:
        return self.net(_cpu_channels_last(x))

    def forward(self, x: Tensor) -> Tensor:
        return _flat_apply(self._forward, x, 3)


class ConvDecoder(nn.Module):
    """``[..., in_dim] -> [..., 1, 28, 28]`` Bernoulli logits: a linear map and transposed convs.

    Args:
        in_dim: size of the input vector.
        channels: channels of the last transposed convolution (doubled below it).
        out_channels: image channels.
        skip_channels: channels of an optional full-resolution input ``skip[..., S, 28, 28]``
            (e.g. a prototype image read from a memory), concatenated with the upsampled
            features and merged by one more convolution before the output layer; 0: none.
        norm: normalization before every hidden activation, as in :class:`ConvEncoder`.
    """

    def __init__(
        self, in_dim: int, channels: int = 32, out_channels: int = 1, skip_channels: int = 0,
        norm: str = "none",
    ) -> None:
        super().__init__()
        c = channels
        self.c = c
        self.skip_channels = skip_channels
        self.fc = nn.Sequential(
            nn.Linear(in_dim, 4 * c * 7 * 7), *_norm(4 * c * 7 * 7, norm), nn.ELU()
        )
        self.net = nn.Sequential(  # flat, so that checkpoints without norms keep their keys
            nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1),  # 14
            *_norm(2 * c, norm, True),
            nn.ELU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # 28
            *_norm(c, norm, True),
            nn.ELU(),
            nn.Conv2d(c, out_channels, 3, padding=1),
        )
        if skip_channels:
            self.merge = nn.Sequential(nn.Conv2d(c + skip_channels, c, 3, padding=1), nn.ELU())

    def _forward(self, h: Tensor, skip: Tensor | None = None) -> Tensor:
        y = _cpu_channels_last(self.fc(h).reshape(-1, 4 * self.c, 7, 7))
        if skip is None:
            return self.net(y)
        y = self.net[:-1](y)
        y = self.merge(torch.cat([y, _cpu_channels_last(skip)], 1))
        return self.net[-1](y)

    def forward(self, h: Tensor, skip: Tensor | None = None) -> Tensor:
        """Logits ``[..., out_channels, 28, 28]``; pass ``skip[..., S, 28, 28]`` iff S > 0."""
        if (skip is None) != (self.skip_channels == 0):
            raise ValueError(
                f"this decoder takes {self.skip_channels} skip channel(s); "
                f"got {'none' if skip is None else tuple(skip.shape)}"
            )
        if skip is None:
            return _flat_apply(self._forward, h, 1)
        lead = torch.broadcast_shapes(h.shape[:-1], skip.shape[:-3])
        hf = h.expand(*lead, h.shape[-1]).reshape(-1, h.shape[-1])
        sf = skip.expand(*lead, *skip.shape[-3:]).reshape(-1, *skip.shape[-3:])
        y = self._forward(hf, sf)
        return y.reshape(*lead, *y.shape[1:])
